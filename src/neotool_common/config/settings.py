"""Runner settings from the environment, each checked once at start with a one-line error naming it.

===============================  =========  ===============================================================
variable                          default    meaning
===============================  =========  ===============================================================
``KAFKA_BROKERS``                 required   bootstrap servers (see :mod:`.connection` for TLS/SASL settings)
``KAFKA_GROUP_ID``                class      consumer group; overrides the subclass's ``group_id``
``KAFKA_TOPICS``                  class      comma-separated topics; override the subclass's ``topics``
``RETRY_MAX_ATTEMPTS``            5          tries per record before ``retries_exhausted``
``RETRY_BACKOFF_INITIAL_MS``      200        first backoff; doubles per attempt, with jitter
``RETRY_BACKOFF_MAX_MS``          30000      cap on one backoff
``COMMIT_EVERY_RECORDS``          100000     commit after this many completed records ...
``COMMIT_INTERVAL_MS``            1000       ... or this much time, whichever comes first
``DLQ_WRITE_TIMEOUT_MS``          30000      one dead-letter write attempt; failures are re-sent
``CIRCUIT_MAX_CONSECUTIVE_DLQ``   100        stop after this many dead-letters in a row (0: never)
``CIRCUIT_MAX_DLQ_RATIO``         0.5        stop when more of ``CIRCUIT_WINDOW`` records went to the DLQ
``CIRCUIT_WINDOW``                1000       records in the ratio window
``MAX_PENDING_PER_PARTITION``     10000      pause a partition with this many records held behind a DLQ write
``SHUTDOWN_GRACE_MS``             30000      bound on the final DLQ flush and commit at shutdown
``AUTH_FAILURE_EXIT_MS``          60000      exit (code 1) once authentication has been refused this long
``METRICS_PORT``                  8000       /metrics, /healthz, /readyz (0: no server)
``METRICS_HOST``                  0.0.0.0    address the metrics server binds
``LOG_LEVEL``                     INFO       DEBUG, INFO, WARNING, ERROR
``LOG_FORMAT``                    json       json or console
``PROGRESS_INTERVAL_MS``          30000      how often the INFO progress line is logged
``LOG_RECORD_WARNINGS_PER_S``     10         per-record WARNING lines (dead-letters, retries, failed DLQ writes)
                                             written in full each second; the rest counted in one line (0: all)
``RECORD_DECODER``                auto       the fast path's build: ``auto``, ``compiled`` (or exit 2) or
                                             ``interpreted`` (see :mod:`neotool_common.records.native`)
``MAX_CONCURRENCY``               class (1)  records handled at once (see :mod:`.throughput`)
``ORDERING``                      class      ``partition`` (default), ``key`` or ``unordered``
``BATCH_SIZE``                    class      most records in one ``process_batch()`` call (100)
``BATCH_MAX_WAIT_MS``             class      how long a batch waits to fill up (20)
``MAX_IN_FLIGHT``                 class      records out to workers before partitions pause (0: automatic)
``RETRY_TOPIC_DELAYS_MS``         class ()   delay tiers after the in-place retries, e.g. ``30000,300000`` (and
                                             ``fetch.wait.max.ms`` 100 unless ``KAFKA_CONFIG_*`` sets it)
``RETRY_TOPIC_KEY_ORDER``         class      ``true``: later records of a waiting key follow it into the tier
===============================  =========  ===============================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from neotool_common.config.clients import CONSUMER_PROTOCOL, ClientKind
from neotool_common.config.connection import KafkaConnection, passthrough_variable
from neotool_common.config.environment import EnvReader, retry_policy, retry_topic_policy, throughput_policy
from neotool_common.deadletter.circuit import CircuitBreakerPolicy
from neotool_common.deadletter.publisher import DlqPolicy
from neotool_common.errors import ConfigurationError
from neotool_common.policies.commit import CommitPolicy
from neotool_common.policies.retry import RetryPolicy
from neotool_common.policies.retry_topics import RetryTopicPolicy
from neotool_common.policies.throughput import ThroughputPolicy
from neotool_common.records.native import SETTING as DECODER_SETTING
from neotool_common.records.native import check_choice as check_decoder_choice

__all__ = ["RunnerSettings"]

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_FORMATS = ("json", "console")
# librdkafka settings the runner owns: changing them would break the delivery guarantees.
_OWNED = {"enable.auto.commit": "false", "enable.auto.offset.store": "false"}
# Settings that have their own variable: a KAFKA_CONFIG_* copy would silently disagree with it (and with the
# group label of every metric), so it is refused with the name of the variable to use.
_HAS_OWN_VARIABLE = {"group.id": "KAFKA_GROUP_ID", "bootstrap.servers": "KAFKA_BROKERS"}
# The largest timeout librdkafka accepts (a 32-bit signed int of milliseconds).
_MAX_MS = 2_147_483_647
# With retry tiers: how long a fetch may wait for data (librdkafka: 500), so a released retry record is on time.
RETRY_FETCH_WAIT_MS = 100
# The consumer's prefetch queue (librdkafka's default is 64 MiB): what it holds is memory the process keeps
# whether or not the handler keeps up, so it bounds the RSS; 16 MiB is still over a second of records at the
# runner's speed (docs/throughput.md, "Memory"). KAFKA_CONFIG_QUEUED_MAX_MESSAGES_KBYTES overrides it.
PREFETCH_KBYTES = 16_384
# Once the queue is full, librdkafka waits fetch.queue.backoff.ms (1 s by default) before it fetches that partition
# again; a queue the runner empties in well under a second then runs dry for the rest of it (the 16 MiB runner read
# 0.7x of the 64 MiB one in make bench). At 50 ms the fetch is asked for again long before the queue is empty.
PREFETCH_BACKOFF_MS = 50
# The dead-letter producer waits this long to fill a batch: the most the platform standard allows a producer
# (§4.3, linger.ms <= 10; its own producers wait 5 ms). Its cost is per produce request, in the client's threads:
# at 1% poison, 5 ms meant a request per two or three dead letters and made the poison mix read 0.76x of clean in
# make bench. It delays a dead letter's commit, not its record.
DLQ_LINGER_MS = 10
# ...and compresses with snappy, the standard's other codec (§4.3: zstd or snappy): a dead letter's batch is a
# few records, for which zstd's set-up costs the client's threads half as much again as snappy's whole work.
DLQ_COMPRESSION = "snappy"
# librdkafka's default receive.message.max.bytes: the largest response a client accepts.
_DLQ_MESSAGE_MAX_BYTES = 100_000_000


@dataclass(frozen=True)
class RunnerSettings:
    connection: KafkaConnection
    group_id: str
    topics: tuple[str, ...]
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    commit: CommitPolicy = field(default_factory=CommitPolicy)
    dlq: DlqPolicy = field(default_factory=DlqPolicy)
    circuit: CircuitBreakerPolicy = field(default_factory=CircuitBreakerPolicy)
    throughput: ThroughputPolicy = field(default_factory=ThroughputPolicy)
    retry_topics: RetryTopicPolicy = field(default_factory=RetryTopicPolicy)
    max_pending_per_partition: int = 10_000
    shutdown_grace_s: float = 30.0
    auth_failure_exit_s: float = 60.0
    metrics_port: int = 8000
    metrics_host: str = "0.0.0.0"  # noqa: S104 - containers are probed from outside the pod
    log_level: str = "INFO"
    log_format: str = "json"
    progress_interval_s: float = 30.0
    record_warnings_per_s: int = 10
    record_decoder: str = "auto"  # which build of the record fast path runs (records/native.py)
    poll_timeout_s: float = 0.2
    batch_size: int = 1000

    def __post_init__(self) -> None:
        self._check_own_settings()
        self._check_passthrough()

    def _check_own_settings(self) -> None:
        if not self.group_id:
            raise ConfigurationError("KAFKA_GROUP_ID", "is required (or set group_id on the consumer class)")
        if not self.topics or any(not t for t in self.topics):
            raise ConfigurationError("KAFKA_TOPICS", "is required (or set topics on the consumer class)")
        if any(t.endswith(".dlq") for t in self.topics):
            raise ConfigurationError("KAFKA_TOPICS", "a .dlq topic is read with neotool-dlq, not consumed")
        if self.log_level not in _LEVELS:
            raise ConfigurationError("LOG_LEVEL", f"must be one of {', '.join(_LEVELS)}")
        if self.log_format not in _FORMATS:
            raise ConfigurationError("LOG_FORMAT", f"must be one of {', '.join(_FORMATS)}")
        check_decoder_choice(self.record_decoder)

    def _check_passthrough(self) -> None:
        for name, variable in _HAS_OWN_VARIABLE.items():
            if name in self.connection.extra:
                raise ConfigurationError(passthrough_variable(name), f"set {variable} instead")
        for name, wanted in _OWNED.items():
            given = self.connection.extra.get(name)
            if given is not None and given.lower() != wanted:
                raise ConfigurationError(
                    passthrough_variable(name), f"the runner commits offsets itself; {name} must stay {wanted}"
                )

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, defaults_from: type | None = None, **overrides: Any
    ) -> RunnerSettings:
        """Settings from ``env`` (default ``os.environ``); ``defaults_from`` supplies ``group_id``/``topics``."""
        env = os.environ if env is None else env
        reader = EnvReader(env)
        retry = reader.collect(lambda: retry_policy(reader), RetryPolicy())
        values: dict[str, Any] = {
            "connection": reader.collect(lambda: KafkaConnection.from_env(env), None),
            "group_id": reader.text("KAFKA_GROUP_ID") or str(getattr(defaults_from, "group_id", "") or ""),
            "topics": reader.topics("KAFKA_TOPICS") or tuple(getattr(defaults_from, "topics", ()) or ()),
            "retry": retry,
            "commit": CommitPolicy(
                every_records=reader.number("COMMIT_EVERY_RECORDS", CommitPolicy.every_records, int, minimum=1),
                interval_s=reader.number("COMMIT_INTERVAL_MS", round(CommitPolicy.interval_s * 1000), int, minimum=1)
                / 1000,
            ),
            "dlq": DlqPolicy(
                write_timeout_s=reader.number("DLQ_WRITE_TIMEOUT_MS", 30_000, int, minimum=100, maximum=_MAX_MS) / 1000
            ),
            "circuit": CircuitBreakerPolicy(
                max_consecutive=reader.number("CIRCUIT_MAX_CONSECUTIVE_DLQ", 100, int, minimum=0),
                max_ratio=reader.number("CIRCUIT_MAX_DLQ_RATIO", 0.5, float, minimum=0.001, maximum=1.0),
                window=reader.number("CIRCUIT_WINDOW", 1000, int, minimum=1),
            ),
            "max_pending_per_partition": reader.number("MAX_PENDING_PER_PARTITION", 10_000, int, minimum=1),
            "shutdown_grace_s": reader.number("SHUTDOWN_GRACE_MS", 30_000, int, minimum=0) / 1000,
            "auth_failure_exit_s": reader.number("AUTH_FAILURE_EXIT_MS", 60_000, int, minimum=0) / 1000,
            "metrics_port": reader.number("METRICS_PORT", 8000, int, minimum=0, maximum=65535),
            "metrics_host": reader.text("METRICS_HOST") or "0.0.0.0",  # noqa: S104 - see field
            "log_level": (reader.text("LOG_LEVEL") or "INFO").upper(),
            "log_format": (reader.text("LOG_FORMAT") or "json").lower(),
            "progress_interval_s": reader.number("PROGRESS_INTERVAL_MS", 30_000, int, minimum=100) / 1000,
            "record_warnings_per_s": reader.number("LOG_RECORD_WARNINGS_PER_S", 10, int, minimum=0),
            "record_decoder": (reader.text(DECODER_SETTING) or "auto").lower(),
            "throughput": reader.collect(lambda: throughput_policy(reader, defaults_from), ThroughputPolicy()),
            "retry_topics": reader.collect(lambda: retry_topic_policy(reader, defaults_from), RetryTopicPolicy()),
        }
        values.update(overrides)
        if reader.errors and values["connection"] is not None:
            reader.collect(lambda: cls(**values), None)  # its own checks' first error joins the others
        reader.raise_errors()  # every bad variable at once, one line each
        return cls(**values)

    @property
    def subscription(self) -> tuple[str, ...]:
        """What the runner subscribes to: the source topics, then the group's retry topics of each."""
        tiers = self.retry_topics
        return self.topics + tuple(t for source in self.topics for t in tiers.topics_for(source, self.group_id))

    def consumer_config(self) -> dict[str, Any]:
        """librdkafka consumer settings: manual offset store and commits, incremental rebalancing.

        The classic group protocol (the default) gets the cooperative-sticky assignor; under the consumer
        protocol (``KAFKA_CONFIG_GROUP_PROTOCOL=consumer``) the broker assigns and the assignor is left out.
        """
        config: dict[str, Any] = {
            "group.id": self.group_id,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "queued.max.messages.kbytes": PREFETCH_KBYTES,
            "fetch.queue.backoff.ms": PREFETCH_BACKOFF_MS,
        }
        if self.connection.group_protocol != CONSUMER_PROTOCOL:
            config["partition.assignment.strategy"] = "cooperative-sticky"
        if self.retry_topics.enabled:  # a retry partition resumed when due waits for the fetch in flight: <= this
            config["fetch.wait.max.ms"] = RETRY_FETCH_WAIT_MS
        config.update(self.connection.client_config(ClientKind.CONSUMER))
        config.update(_OWNED)
        return config

    def dlq_producer_config(self) -> dict[str, Any]:
        """The dead-letter producer's settings: producer and global ones only, none of the consumer's."""
        config = self.connection.producer_config()
        config.setdefault("message.timeout.ms", int(self.dlq.write_timeout_s * 1000))
        config["delivery.timeout.ms"] = config.pop("message.timeout.ms")
        # A DLQ copy is the source record plus its dlq.* headers. librdkafka's own 1,000,000-byte default would
        # refuse, forever, records the broker accepted on the source topic (its default limit is ~1 MiB), so
        # the limit is left to the DLQ topic's max.message.bytes, where operators set it.
        config.setdefault("message.max.bytes", _DLQ_MESSAGE_MAX_BYTES)
        if not {"linger.ms", "queue.buffering.max.ms"} & set(self.connection.extra):
            config["linger.ms"] = DLQ_LINGER_MS
        if not {"compression.type", "compression.codec"} & set(self.connection.extra):
            config["compression.type"] = DLQ_COMPRESSION
        return config
