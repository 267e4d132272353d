"""What :class:`~neotool_common.producing.producer.EnvelopeProducer` is given: a Kafka producer and a wall clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["ProducerLike", "SystemWallClock", "WallClock"]


class WallClock(Protocol):
    """Where ``ingested_at`` and ``failed_at`` come from; :class:`neotool_common.clock.Clock` is one."""

    def time(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemWallClock:
    time = staticmethod(time.time)


class ProducerLike(Protocol):
    """The part of ``confluent_kafka.Producer`` the producer uses; tests give a fake through ``producer_factory``."""

    def produce(
        self,
        topic: str,
        value: str | bytes | None = ...,
        key: str | bytes | None = ...,
        *,
        on_delivery: Callable[[Any, Any], None] | None = ...,
        headers: list[tuple[str, str | bytes | None]] | None = ...,
    ) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...

    def flush(self, timeout: float = ...) -> int: ...
