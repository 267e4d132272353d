"""The one owner of ``pause()`` and ``resume()``: why each partition is paused, and nothing else.

A partition is paused while its set of reasons is not empty and fetched again as soon as it becomes empty.
Every part of the runner that needs a partition to wait adds its :class:`PauseReason` and removes it when
done; none of them calls the client's ``pause()``/``resume()`` itself, so two reasons can never undo each
other and a forgotten reason cannot outlive its partition:

* librdkafka keeps an application's pause on a partition across revoke and assign. A partition that comes
  back (an eager rebalance, a cooperative move back, a ``lost`` after eviction) would stay paused for ever,
  with no reason left to resume it. :meth:`PartitionFlow.assigned` therefore resumes every partition it is
  given, and :meth:`PartitionFlow.released` clears the reasons (and the client's pause) of partitions that go.
* ``on_change`` hears every change of a partition's reasons (the paused-partition gauge, say).

Used by the runner's engine and by ``neotool-dlq replay``; keyed by ``(topic, partition)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any, Protocol

from confluent_kafka import TopicPartition

__all__ = ["PartitionFlow", "PauseReason"]

Key = tuple[str, int]


class PauseReason(StrEnum):
    RETRY_BACKOFF = "retry_backoff"  # a record waits out its retry backoff (the partition was sought back)
    RETRY_DUE = "retry_due"  # a retry topic's head record is not due yet (the partition was sought back to it)
    DLQ_BACKPRESSURE = "dlq_backpressure"  # too many records held behind an unacknowledged dead-letter write
    IN_FLIGHT_LIMIT = "in_flight_limit"  # the throughput modes' workers hold max_in_flight records
    REPLAY_DONE = "replay_done"  # neotool-dlq replay read this partition up to its end


class PausingClient(Protocol):
    def pause(self, partitions: list[TopicPartition]) -> None: ...
    def resume(self, partitions: list[TopicPartition]) -> None: ...


def _unobserved(key: Key, reasons: frozenset[PauseReason]) -> None:
    pass


class PartitionFlow:
    __slots__ = ("_client", "_on_change", "_reasons")

    def __init__(
        self, client: PausingClient, on_change: Callable[[Key, frozenset[PauseReason]], None] = _unobserved
    ) -> None:
        self._client = client
        self._on_change = on_change
        self._reasons: dict[Key, set[PauseReason]] = {}

    def pause(self, key: Key, reason: PauseReason) -> None:
        """Hold ``key`` for ``reason``; the client pauses it when this is its first reason."""
        reasons = self._reasons.get(key)
        if reasons is None:
            reasons = self._reasons[key] = set()
        elif reason in reasons:
            return
        if not reasons:
            self._client.pause([TopicPartition(*key)])
        reasons.add(reason)
        self._on_change(key, frozenset(reasons))

    def resume(self, key: Key, reason: PauseReason) -> None:
        """Drop ``reason``; the client fetches ``key`` again when no other reason holds it."""
        reasons = self._reasons.get(key)
        if not reasons or reason not in reasons:
            return
        reasons.discard(reason)
        if not reasons:
            del self._reasons[key]
            self._client.resume([TopicPartition(*key)])
        self._on_change(key, frozenset(reasons))

    def resume_all(self, reason: PauseReason) -> None:
        for key in [key for key, reasons in self._reasons.items() if reason in reasons]:
            self.resume(key, reason)

    def is_paused(self, key: Key, reason: PauseReason | None = None) -> bool:
        reasons = self._reasons.get(key)
        return bool(reasons) if reason is None else reasons is not None and reason in reasons

    def reasons(self, key: Key) -> frozenset[PauseReason]:
        return frozenset(self._reasons.get(key, ()))

    def assigned(self, partitions: Iterable[Any]) -> None:
        """New partitions start flowing, whatever the client remembers of an earlier assignment."""
        keys = [(tp.topic, tp.partition) for tp in partitions]
        for key in keys:
            self._clear(key)
        if keys:
            self._client.resume([TopicPartition(*key) for key in keys])

    def released(self, partitions: Iterable[Any]) -> None:
        """Partitions revoked or lost: their reasons go with them, and so does the client's pause."""
        paused = [key for tp in partitions if self._clear(key := (tp.topic, tp.partition))]
        if paused:
            self._client.resume([TopicPartition(*key) for key in paused])

    def _clear(self, key: Key) -> bool:
        reasons = self._reasons.pop(key, None)
        if reasons:
            self._on_change(key, frozenset())
            return True
        return False
