"""Where the lag monitor reads offsets: the partitions' end offsets and the group's committed offsets.

:class:`ClusterOffsets` asks the end offsets with an admin client of its own, so that no request waits behind the
consumer's long-poll fetch and nothing blocks the poll thread (the measurements are in :mod:`.lag`); it is made at
its first question and given only the settings an admin client understands. The committed offsets are asked by a
consumer of the group that never joins it, on a thread of its own (:mod:`.group_offsets`): the admin client's
``list_consumer_group_offsets`` takes librdkafka's coordinator-targeted admin path, which can abort the process.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, Final, Protocol

from confluent_kafka import Consumer, IsolationLevel, KafkaError, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # OffsetSpec is exported, not in __all__
    AdminClient,
    OffsetSpec,
)

from neotool_common.config.clients import ClientKind, for_client, offset_reader_config
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer.group_offsets import NO_OFFSET, GroupOffsetReader

__all__ = ["NO_OFFSET", "OFFSETS_TIMEOUT_S", "ClusterOffsets", "Key", "OffsetSource"]

# Bound of one refresh's requests; below LAG_REFRESH_S, so that a refresh never overtakes the previous one.
OFFSETS_TIMEOUT_S: Final = 4.0
Key = tuple[str, int]

_LATEST: Final = OffsetSpec.latest()  # type: ignore[no-untyped-call]


class OffsetSource(Protocol):
    """Where a refresh's offsets come from. Both calls return at once; their futures complete on another thread."""

    def end_offsets(self, partitions: Sequence[Key]) -> Future[dict[Key, int]]:
        """Each partition's end offset (partitions it could not get are left out)."""
        ...

    def committed_offsets(self, partitions: Sequence[Key]) -> Future[dict[Key, int]]:
        """The group's committed offset of each partition, :data:`NO_OFFSET` where it has none."""
        ...

    def close(self) -> None: ...


class ClusterOffsets:
    """An :class:`OffsetSource`: end offsets from an admin client, committed ones from a non-member consumer."""

    def __init__(
        self,
        config: Mapping[str, Any],
        group: str,
        *,
        read_committed: bool = True,
        timeout_s: float = OFFSETS_TIMEOUT_S,
        admin_factory: Callable[[dict[str, Any]], Any] = AdminClient,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> None:
        admin_config = for_client(ClientKind.ADMIN, config)
        # Quiet: the consumer reports the same cluster, and a failed refresh is logged by the monitor.
        self._config = {"client.id": "neotool-lag-monitor", "log_level": 0, **admin_config, "error_cb": self._error}
        self._group = group
        self._isolation = IsolationLevel.READ_COMMITTED if read_committed else IsolationLevel.READ_UNCOMMITTED
        self._timeout_s = timeout_s
        self._admin_factory = admin_factory
        self._admin: Any = None
        self.last_error: str | None = None
        reader = {**offset_reader_config(config, group, "neotool-lag-monitor"), "error_cb": self._error}
        self._group_offsets = GroupOffsetReader(reader, timeout_s, consumer_factory)

    @classmethod
    def for_settings(
        cls,
        settings: RunnerSettings,
        admin_factory: Callable[[dict[str, Any]], Any] = AdminClient,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
    ) -> ClusterOffsets:
        isolation = settings.connection.extra.get("isolation.level", "read_committed")
        config = settings.connection.client_config()
        read_committed = isolation != "read_uncommitted"
        return cls(
            config,
            settings.group_id,
            read_committed=read_committed,
            admin_factory=admin_factory,
            consumer_factory=consumer_factory,
        )

    def end_offsets(self, partitions: Sequence[Key]) -> Future[dict[Key, int]]:
        futures = self._client().list_offsets(
            {TopicPartition(topic, partition): _LATEST for topic, partition in partitions},
            isolation_level=self._isolation,
            request_timeout=self._timeout_s,
        )
        return _gather({(tp.topic, tp.partition): future for tp, future in futures.items()})

    def committed_offsets(self, partitions: Sequence[Key]) -> Future[dict[Key, int]]:
        return self._group_offsets.committed_offsets(partitions)

    def close(self) -> None:
        """Close the offset reader on its thread, and drop the admin client on the calling thread (librdkafka's
        destroy runs where the last reference goes)."""
        self._group_offsets.close()
        self._admin = None

    def _client(self) -> Any:
        if self._admin is None:
            self._admin = self._admin_factory(self._config)
        return self._admin

    def _error(self, error: KafkaError) -> None:
        self.last_error = error.str()


def _gather(futures: Mapping[Key, Future[Any]]) -> Future[dict[Key, int]]:
    """One future for the offsets of per-partition ``ListOffsetsResultInfo`` futures; fails only if all failed."""
    answer: Future[dict[Key, int]] = Future()
    offsets: dict[Key, int] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()
    if not futures:
        answer.set_result(offsets)
        return answer

    def one(key: Key, future: Future[Any]) -> None:
        try:
            offset, error = int(future.result().offset), None
        except Exception as exc:  # noqa: BLE001 - one partition's failure leaves the others' offsets
            offset, error = NO_OFFSET, exc
        with lock:
            if error is None:
                offsets[key] = offset
            else:
                errors.append(error)
            finished = len(offsets) + len(errors) == len(futures)
        if finished:
            if offsets or not errors:
                answer.set_result(offsets)
            else:
                answer.set_exception(errors[0])

    for key, future in futures.items():
        future.add_done_callback(functools.partial(one, key))
    return answer
