"""Reading a batch's durable facts from the cluster: manifests, the group's committed offsets, DLQ copies.

(What waits in the group's retry topics is read with these clients too: :mod:`.retrying`.)

Every topic is read with ``assign()`` from its start to the high watermarks of a snapshot taken when the read
began (so a read always ends), by a consumer that joins no group and never commits. :class:`TopicTail` keeps
its position, so a long-lived reader (the runner's batch watch) reads only what is new each time.
Failures to reach the cluster or to find a topic are :class:`ConfigurationError`\\ s naming ``KAFKA_BROKERS``
or the topic.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from neotool_common.batches.manifest import BatchManifest, manifest_topic_for
from neotool_common.batches.reconcile import DlqFact
from neotool_common.config.clients import ClientKind, offset_reader_config
from neotool_common.config.connection import KafkaConnection
from neotool_common.deadletter.headers import (
    DLQ_CONSUMER_GROUP,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_REASON,
    dlq_topic_for,
)
from neotool_common.errors import ConfigurationError

__all__ = ["BatchCluster", "TopicTail", "dlq_fact_of", "latest_manifests"]

_READ_BATCH: Final = 500
_READER_SETTINGS: Final = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
    "auto.offset.reset": "earliest",
}


@dataclass
class BatchCluster:
    """Clients for one cluster; every question is answered within ``timeout_s`` or raises."""

    connection: KafkaConnection
    timeout_s: float = 15.0
    client_id: str = "neotool-batch"
    _admin: AdminClient | None = field(default=None, repr=False)
    _offset_readers: dict[str, Any] = field(default_factory=dict, repr=False)

    def config(self, kind: ClientKind) -> dict[str, Any]:
        return {"client.id": self.client_id, "log_level": 0, **self.connection.client_config(kind)}

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(self.config(ClientKind.ADMIN))
        return self._admin

    def partitions(self, topic: str) -> int | None:
        """The topic's partition count; ``None`` when it does not exist."""
        try:
            metadata = self.admin.list_topics(topic, timeout=self.timeout_s)
        except KafkaException as error:
            raise ConfigurationError(
                "KAFKA_BROKERS", f"cannot reach {self.connection.brokers} within {self.timeout_s:g}s ({error})"
            ) from None
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return None
        return len(found.partitions)

    def committed(self, group: str, topic: str, partitions: int) -> dict[int, int]:
        """The offsets ``group`` committed on ``topic`` (partitions without one are left out).

        Asked by a consumer of ``group`` that never joins it (never subscribed, assigned, committing), kept until
        :meth:`close`: an OffsetFetch through the consumer's coordinator code, not the admin client's
        ``list_consumer_group_offsets``, whose error path in librdkafka 2.16 can abort the process (see
        ``neotool_common.consumer.group_offsets``).
        """
        wanted = [TopicPartition(topic, p) for p in range(partitions)]
        try:
            result = self._offset_reader(group).committed(wanted, timeout=self.timeout_s)
        except KafkaException:
            return {}
        return {tp.partition: tp.offset for tp in result if tp.error is None and tp.offset >= 0}

    def _offset_reader(self, group: str) -> Any:
        reader = self._offset_readers.get(group)
        if reader is None:
            config = offset_reader_config(self.connection.client_config(ClientKind.CONSUMER), group, self.client_id)
            reader = self._offset_readers[group] = Consumer(config)
        return reader

    def topic_names(self) -> frozenset[str]:
        """The names of every topic of the cluster."""
        try:
            metadata = self.admin.list_topics(timeout=self.timeout_s)
        except KafkaException as error:
            raise ConfigurationError(
                "KAFKA_BROKERS", f"cannot reach {self.connection.brokers} within {self.timeout_s:g}s ({error})"
            ) from None
        return frozenset(name for name, found in metadata.topics.items() if found.error is None)

    def close(self) -> None:
        """Close the offset readers and let the admin client go now, on this thread (the readers :meth:`tail`
        hands out are the caller's)."""
        readers, self._offset_readers = list(self._offset_readers.values()), {}
        for reader in readers:
            reader.close()
        self._admin = None

    def __enter__(self) -> BatchCluster:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def tail(self, topic: str) -> TopicTail | None:
        """A reader of ``topic`` from its start; ``None`` when the topic does not exist."""
        partitions = self.partitions(topic)
        if partitions is None:
            return None
        config = {**self.config(ClientKind.CONSUMER), **_READER_SETTINGS}
        config["group.id"] = f"{self.client_id}-reader-{uuid.uuid4().hex[:8]}"  # never joined: assign() only
        return TopicTail(Consumer(config), topic, partitions, self.timeout_s, ends=lambda: self.ends(topic, partitions))

    def ends(self, topic: str, partitions: int) -> dict[int, int]:
        """The high watermarks of ``topic`` now, in one request on the admin client's own connections.

        (A reader's own ``get_watermark_offsets`` queues behind its fetch long-poll, up to ``fetch.wait.max.ms``
        per partition.)
        """
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        request = {TopicPartition(topic, p): latest for p in range(partitions)}
        try:
            futures = self.admin.list_offsets(request, request_timeout=self.timeout_s)
            return {tp.partition: future.result(self.timeout_s).offset for tp, future in futures.items()}
        except (KafkaException, TimeoutError) as error:
            raise ConfigurationError("KAFKA_BROKERS", f"cannot read {topic}: {error}") from None

    def read_all(self, topic: str) -> list[Any]:
        """Every record of ``topic`` now (empty when it does not exist)."""
        tail = self.tail(topic)
        if tail is None:
            return []
        try:
            return tail.catch_up()
        finally:
            tail.close()

    def manifests(self, topic: str) -> dict[str, list[BatchManifest]]:
        """The parts of every batch of ``topic``, by batch id."""
        return latest_manifests(self.read_all(manifest_topic_for(topic)))

    def dlq_facts(self, topic: str) -> list[DlqFact]:
        """What the DLQ of ``topic`` says about each copy in it."""
        return [fact for message in self.read_all(dlq_topic_for(topic)) if (fact := dlq_fact_of(message))]


class TopicTail:
    """Reads a topic forward from its start; :meth:`catch_up` returns what arrived since the last call."""

    def __init__(
        self,
        consumer: Any,
        topic: str,
        partitions: int,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        ends: Callable[[], dict[int, int]] | None = None,
    ) -> None:
        self.topic = topic
        self._consumer = consumer
        self._query_ends = ends
        self._timeout_s = timeout_s
        self._clock = clock
        self._next = dict.fromkeys(range(partitions), 0)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])

    @property
    def partitions(self) -> int:
        return len(self._next)

    def seek(self, start: Mapping[int, int]) -> None:
        """Read from ``start`` (an offset per partition; a partition left out: from its beginning) from now on."""
        self._next = {p: start.get(p, 0) for p in self._next}
        self._consumer.assign([TopicPartition(self.topic, p, start.get(p, OFFSET_BEGINNING)) for p in self._next])

    def catch_up(self) -> list[Any]:
        """Records up to the high watermarks as of now, in partition order per partition."""
        ends = self._ends()
        pending = {p for p, end in ends.items() if self._next[p] < end}
        found: list[Any] = []
        last_progress = self._clock()
        while pending:
            messages = self._consumer.consume(num_messages=_READ_BATCH, timeout=0.2)
            if messages:
                last_progress = self._clock()
            elif self._clock() - last_progress > self._timeout_s:
                raise ConfigurationError("KAFKA_BROKERS", f"no data from {self.topic} for {self._timeout_s:g}s")
            for message in messages:
                self._take(message, pending, ends, found)
        return found

    def _take(self, message: Any, pending: set[int], ends: dict[int, int], found: list[Any]) -> None:
        partition = message.partition()
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self._next[partition] = max(self._next[partition], message.offset())
                pending.discard(partition)
                return
            if error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
                return  # the reader's group.id is never used (assign only): no ACL on it is needed
            raise ConfigurationError(self.topic, f"cannot read partition {partition}: {error.str()}")
        if message.offset() < self._next[partition]:
            return  # fetched before a seek moved past it
        self._next[partition] = message.offset() + 1
        found.append(message)
        if self._next[partition] >= ends[partition]:
            pending.discard(partition)

    def _ends(self) -> dict[int, int]:
        if self._query_ends is not None:
            return self._query_ends()
        ends: dict[int, int] = {}
        for partition in self._next:
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=self._timeout_s, cached=False
                )
            except KafkaException as error:
                raise ConfigurationError("KAFKA_BROKERS", f"cannot read {self.topic}: {error}") from None
            ends[partition] = high
        return ends

    def close(self) -> None:
        self._consumer.close()


def latest_manifests(messages: Iterable[Any]) -> dict[str, list[BatchManifest]]:
    """The last manifest per key (a tombstone removes it; an unreadable value is skipped), by batch id."""
    latest: dict[bytes, BatchManifest | None] = {}
    for message in messages:
        key = message.key() or b""
        value = message.value()
        try:
            latest[key] = None if value is None else BatchManifest.decode(value)
        except (ValueError, KeyError, TypeError):
            continue
    batches: dict[str, list[BatchManifest]] = {}
    for manifest in latest.values():
        if manifest is not None:
            batches.setdefault(manifest.batch_id, []).append(manifest)
    return batches


def dlq_fact_of(message: Any) -> DlqFact | None:
    """The facts a DLQ copy carries, or ``None`` when it lacks the headers that place it."""
    headers = {name: value for name, value in message.headers() or () if value is not None}
    try:
        return DlqFact(
            original_topic=headers[DLQ_ORIGINAL_TOPIC].decode(),
            partition=int(headers[DLQ_ORIGINAL_PARTITION]),
            offset=int(headers[DLQ_ORIGINAL_OFFSET]),
            group=headers.get(DLQ_CONSUMER_GROUP, b"").decode(),
            reason=headers.get(DLQ_REASON, b"unknown").decode(),
        )
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
