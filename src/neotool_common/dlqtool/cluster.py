"""Kafka clients for the DLQ tools, and the questions they ask the cluster before touching any record.

Every failure to reach the cluster or to find a topic is a :class:`ConfigurationError`: the CLI prints
its one line and exits 2. librdkafka's own log lines are silenced unless ``verbose`` is set; the first
connection error it reports is kept and becomes part of that one line.
"""

from __future__ import annotations

import difflib
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType  # type: ignore[attr-defined]
from confluent_kafka.cimpl import NewTopic

from neotool_common.config.clients import CONSUMER_PROTOCOL, ClientKind, rebalances_incrementally
from neotool_common.config.connection import KafkaConnection
from neotool_common.errors import ConfigurationError

__all__ = [
    "DlqCluster",
    "OffsetRange",
    "TopicInfo",
    "wait_for_free_group",
]

_CLIENT_ID = "neotool-dlq"
# Settings the tools' correctness rests on: a KAFKA_CONFIG_* variable must not turn them off.
_NEVER_AUTO_COMMIT = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
    "auto.offset.reset": "earliest",
}
# Under the consumer group protocol the broker sets the session timeout: this group config, else this broker one.
_GROUP_SESSION_TIMEOUT = "consumer.session.timeout.ms"
_BROKER_SESSION_TIMEOUT = "group.consumer.session.timeout.ms"
_BROKER_SESSION_TIMEOUT_DEFAULT_MS = 45_000


@dataclass(frozen=True)
class TopicInfo:
    """What the tools need to know about a topic: its partition count and replication factor."""

    name: str
    partitions: int
    replication_factor: int


@dataclass(frozen=True)
class OffsetRange:
    """Offsets ``start`` (inclusive) to ``end`` (exclusive) of one partition."""

    start: int
    end: int

    def __len__(self) -> int:
        return max(0, self.end - self.start)


@dataclass
class _ErrorLog:
    first: str | None = None

    def __call__(self, error: KafkaError) -> None:
        if self.first is None:
            self.first = error.str()


@dataclass
class DlqCluster:
    """Makes clients for one cluster and answers metadata questions within ``timeout_s``."""

    connection: KafkaConnection
    timeout_s: float = 15.0
    verbose: bool = False
    _errors: _ErrorLog = field(default_factory=_ErrorLog, repr=False)
    _admin: AdminClient | None = field(default=None, repr=False)

    def common_config(self, kind: ClientKind = ClientKind.ADMIN) -> dict[str, Any]:
        """Settings of a client of ``kind``: the connection's, without any ``KAFKA_CONFIG_*`` of another kind."""
        quiet: dict[str, Any] = {} if self.verbose else {"log_level": 0}
        return {"client.id": _CLIENT_ID, "error_cb": self._errors, **quiet, **self.connection.client_config(kind)}

    def reader(self) -> Consumer:
        """A consumer for ``assign()``-only reading: it joins no group and never commits."""
        return Consumer(self.reader_config())

    def reader_config(self) -> dict[str, Any]:
        group = f"neotool-dlq-reader-{uuid.uuid4().hex[:8]}"
        return {**self.common_config(ClientKind.CONSUMER), **_NEVER_AUTO_COMMIT, "group.id": group}

    def group_consumer(self, group_id: str, session_timeout_ms: int | None = None) -> Consumer:
        """A consumer of ``group_id`` that commits only when told to (``KAFKA_CONFIG_*`` cannot change that)."""
        return Consumer(self.group_consumer_config(group_id, session_timeout_ms))

    def group_consumer_config(self, group_id: str, session_timeout_ms: int | None = None) -> dict[str, Any]:
        """``session_timeout_ms`` is a default for the classic protocol; the consumer protocol leaves it to the
        broker (librdkafka refuses it there)."""
        classic = self.connection.group_protocol != CONSUMER_PROTOCOL
        tunable = {"session.timeout.ms": session_timeout_ms} if classic and session_timeout_ms is not None else {}
        return {**tunable, **self.common_config(ClientKind.CONSUMER), **_NEVER_AUTO_COMMIT, "group.id": group_id}

    @property
    def group_rebalances_incrementally(self) -> bool:
        """True when the group consumer must take partitions with ``incremental_assign()`` (consumer protocol,
        or a cooperative assignor), False when ``assign()`` replaces the whole assignment (eager)."""
        return rebalances_incrementally(self.group_consumer_config("any"))

    def session_timeout_ms(self, default: int, group_id: str | None = None) -> int:
        """The group session timeout in effect.

        Classic protocol: ``KAFKA_CONFIG_SESSION_TIMEOUT_MS`` when set, else ``default``. Consumer protocol: the
        group's ``consumer.session.timeout.ms``, else the broker's ``group.consumer.session.timeout.ms`` (45 s
        when neither can be read).
        """
        if self.connection.group_protocol == CONSUMER_PROTOCOL:
            return self._broker_session_timeout_ms(group_id)
        configured = self.connection.extra.get("session.timeout.ms", "")
        return int(configured) if configured.isdigit() else default

    def _broker_session_timeout_ms(self, group_id: str | None) -> int:
        wanted: list[tuple[ConfigResource, str]] = []
        if group_id is not None:
            wanted.append((ConfigResource(ResourceType.GROUP, group_id), _GROUP_SESSION_TIMEOUT))
        brokers = sorted(self._metadata().brokers)
        if brokers:
            wanted.append((ConfigResource(ResourceType.BROKER, str(brokers[0])), _BROKER_SESSION_TIMEOUT))
        for resource, name in wanted:
            try:
                future = self.admin.describe_configs([resource], request_timeout=self.timeout_s)[resource]
                entry = future.result(self.timeout_s).get(name)
            except KafkaException:
                continue
            if entry is not None and str(entry.value).isdigit():
                return int(entry.value)
        return _BROKER_SESSION_TIMEOUT_DEFAULT_MS

    def producer(self) -> Producer:
        """An idempotent ``acks=all`` producer whose key partitioner matches the Java clients' (murmur2)."""
        return Producer(self.producer_config())

    def producer_config(self) -> dict[str, Any]:
        """Producer and global settings only: a consumer's ``KAFKA_CONFIG_*`` would be warned about and ignored."""
        config: dict[str, Any] = {"partitioner": "murmur2_random", "client.id": _CLIENT_ID, "error_cb": self._errors}
        if not self.verbose:
            config["log_level"] = 0
        config.update(self.connection.producer_config())
        return config

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(self.common_config())
        return self._admin

    def topic(self, name: str, setting: str = "DLQ_TOPIC") -> TopicInfo:
        """The topic's metadata; :class:`ConfigurationError` if it is missing or the cluster is unreachable."""
        metadata = self._metadata(name)
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None:
            code = topic.error.code() if topic is not None and topic.error is not None else None
            if code in (None, KafkaError.UNKNOWN_TOPIC_OR_PART):
                raise ConfigurationError(setting, f"topic {name!r} does not exist{self._suggest(name)}")
            raise ConfigurationError(setting, f"topic {name!r}: {topic.error.str()}")
        replicas = min((len(p.replicas) for p in topic.partitions.values()), default=1)
        return TopicInfo(name, len(topic.partitions), max(1, replicas))

    def exists(self, name: str) -> bool:
        topic = self._metadata(name).topics.get(name)
        return topic is not None and topic.error is None

    def topics_named(self, prefix: str) -> list[str]:
        """The topics whose name starts with ``prefix`` (one metadata request for the whole cluster)."""
        return sorted(name for name in self._metadata().topics if name.startswith(prefix))

    def create_topic(self, like: TopicInfo, name: str) -> TopicInfo:
        """Create ``name`` with the partitions and replication factor of ``like`` (fine if it already exists)."""
        futures = self.admin.create_topics([NewTopic(name, like.partitions, like.replication_factor)])
        try:
            futures[name].result(self.timeout_s)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ConfigurationError(name, f"could not create the topic: {error.args[0].str()}") from None
        return TopicInfo(name, like.partitions, like.replication_factor)

    def watermarks(self, consumer: Consumer, topic: TopicInfo) -> dict[int, OffsetRange]:
        """Low and high watermark of every partition now: the snapshot that bounds a read."""
        ranges: dict[int, OffsetRange] = {}
        for partition in range(topic.partitions):
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic.name, partition), timeout=self.timeout_s, cached=False
                )
            except KafkaException as error:
                raise self._unreachable(error) from None
            ranges[partition] = OffsetRange(low, high)
        return ranges

    def committed(self, consumer: Consumer, topic: TopicInfo) -> dict[int, int]:
        """The offsets ``consumer``'s group committed on ``topic`` (partitions without one are left out)."""
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        try:
            result = consumer.committed(partitions, timeout=self.timeout_s)
        except KafkaException as error:
            raise self._unreachable(error) from None
        return {tp.partition: tp.offset for tp in result if tp.offset >= 0}

    def group_offsets(self, group_id: str, topic: TopicInfo) -> dict[int, int]:
        """The offsets group ``group_id`` committed on ``topic``, asked of the admin client (empty if none)."""
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        request = [ConsumerGroupTopicPartitions(group_id, partitions)]
        try:
            (future,) = self.admin.list_consumer_group_offsets(request, request_timeout=self.timeout_s).values()
            result = future.result(self.timeout_s)
        except KafkaException:
            return {}
        return {tp.partition: tp.offset for tp in result.topic_partitions if tp.error is None and tp.offset >= 0}

    def active_members(self, group_id: str) -> int:
        """How many consumers are members of ``group_id`` right now (0 when the group does not exist)."""
        future = self.admin.describe_consumer_groups([group_id], request_timeout=self.timeout_s)[group_id]
        try:
            return len(future.result().members)
        except KafkaException:
            return 0

    def groups_named(self, prefix: str) -> list[str]:
        """Consumer groups whose id starts with ``prefix``, sorted (empty when they cannot be listed)."""
        try:
            listing = self.admin.list_consumer_groups(request_timeout=self.timeout_s).result(self.timeout_s)
        except KafkaException:
            return []
        return sorted(g.group_id for g in listing.valid if g.group_id.startswith(prefix))

    def _metadata(self, name: str | None = None) -> Any:
        try:
            return self.admin.list_topics(name, timeout=self.timeout_s)
        except KafkaException as error:
            raise self._unreachable(error) from None

    def _unreachable(self, error: KafkaException) -> ConfigurationError:
        self.admin.poll(0)
        cause = self._errors.first or error.args[0].str()
        return ConfigurationError(
            "KAFKA_BROKERS", f"cannot reach {self.connection.brokers} within {self.timeout_s:g}s ({cause})"
        )

    def _suggest(self, name: str) -> str:
        topics: Mapping[str, Any] = self._metadata().topics
        close = difflib.get_close_matches(name, [t for t in topics if not t.startswith("__")], n=3, cutoff=0.6)
        return f"; did you mean {', '.join(close)}?" if close else ""


def wait_for_free_group(
    cluster: DlqCluster,
    group: str,
    session_timeout_ms: int,
    stop: threading.Event,
    say: Callable[[str], None],
    clock: Callable[[], float],
) -> None:
    """Wait (at most one session timeout) until ``group`` has no live member; refuse a group still in use."""
    session_s = cluster.session_timeout_ms(session_timeout_ms, group) / 1000
    deadline = clock() + session_s + 2.0
    told = False
    while cluster.active_members(group) > 0:
        if clock() > deadline:
            raise ConfigurationError(
                "--group",
                f"consumer group {group!r} is in use: another replay of this DLQ is running; wait for it to finish",
            )
        if not told:
            say(f"waiting for consumer group {group} to be free (a crashed run expires soon)")
            told = True
        if stop.wait(0.5):
            return
