"""Which client a librdkafka property is for, and which ones Kafka 4's consumer group protocol takes away.

Every client of a connection gets the connection's settings, ``KAFKA_CONFIG_*`` included, but only the ones
that apply to it: librdkafka warns (``CONFWARN … is a consumer property and will be ignored by this producer
instance``) for each property of the other kind. The scope of each property is the C/P column of librdkafka's
``CONFIGURATION.md``; the tables below hold the consumer-only (C) and producer-only (P) names (global and topic
properties alike), and any name in neither table (``*``, or unknown to them) goes to every client.

The consumer group protocol of KIP-848 (``group.protocol=consumer``) moves group timing and partition
assignment to the broker: librdkafka refuses to create a consumer that sets :data:`MOVED_TO_BROKER`'s
properties. The default stays ``classic``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final, TypeVar

__all__ = [
    "CONSUMER_ONLY",
    "CONSUMER_PROTOCOL",
    "GROUP_PROTOCOLS",
    "MOVED_TO_BROKER",
    "PRODUCER_ONLY",
    "ClientKind",
    "for_client",
    "offset_reader_config",
    "rebalances_incrementally",
]

V = TypeVar("V")

CONSUMER_ONLY: Final = frozenset(
    {
        # group membership
        "group.id",
        "group.instance.id",
        "group.protocol",
        "group.protocol.type",
        "group.remote.assignor",
        "partition.assignment.strategy",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "coordinator.query.interval.ms",
        "max.poll.interval.ms",
        # offsets
        "enable.auto.commit",
        "auto.commit.enable",
        "auto.commit.interval.ms",
        "enable.auto.offset.store",
        "auto.offset.reset",
        "offset.store.method",
        "offset.store.path",
        "offset.store.sync.interval.ms",
        # fetching
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "fetch.wait.max.ms",
        "fetch.queue.backoff.ms",
        "fetch.message.max.bytes",
        "max.partition.fetch.bytes",
        "fetch.max.bytes",
        "fetch.min.bytes",
        "fetch.error.backoff.ms",
        "isolation.level",
        "enable.partition.eof",
        "check.crcs",
        "consume.callback.max.messages",
        # callbacks (librdkafka's names and confluent-kafka's)
        "consume_cb",
        "rebalance_cb",
        "offset_commit_cb",
        "on_commit",
    }
)

PRODUCER_ONLY: Final = frozenset(
    {
        "transactional.id",
        "transaction.timeout.ms",
        "enable.idempotence",
        "enable.gapless.guarantee",
        "queue.buffering.max.messages",
        "queue.buffering.max.kbytes",
        "queue.buffering.max.ms",
        "linger.ms",
        "message.send.max.retries",
        "retries",
        "queue.buffering.backpressure.threshold",
        "compression.codec",
        "compression.type",
        "compression.level",
        "batch.num.messages",
        "batch.size",
        "delivery.report.only.error",
        "sticky.partitioning.linger.ms",
        "request.required.acks",
        "acks",
        "request.timeout.ms",
        "message.timeout.ms",
        "delivery.timeout.ms",
        "queuing.strategy",
        "produce.offset.report",
        "partitioner",
        "partitioner_cb",
        "msg_order_cmp",
        "dr_cb",
        "dr_msg_cb",
        "on_delivery",
    }
)

CONSUMER_PROTOCOL: Final = "consumer"
GROUP_PROTOCOLS: Final = ("classic", CONSUMER_PROTOCOL)

# Consumer properties that group.protocol=consumer refuses, and where each one went.
MOVED_TO_BROKER: Final[Mapping[str, str]] = {
    "session.timeout.ms": "the broker's group.consumer.session.timeout.ms (or the group's consumer.session.timeout.ms)",
    "heartbeat.interval.ms": (
        "the broker's group.consumer.heartbeat.interval.ms (or the group's consumer.heartbeat.interval.ms)"
    ),
    "partition.assignment.strategy": (
        "the broker, which assigns the partitions: pick its assignor with KAFKA_CONFIG_GROUP_REMOTE_ASSIGNOR"
    ),
    "group.protocol.type": "the broker (the property belongs to the classic protocol only)",
}


class ClientKind(StrEnum):
    CONSUMER = "consumer"
    PRODUCER = "producer"
    ADMIN = "admin"


def for_client(kind: ClientKind, config: Mapping[str, V]) -> dict[str, V]:
    """The part of ``config`` that applies to a client of ``kind`` (an admin client takes global ones only)."""
    foreign = {
        ClientKind.CONSUMER: PRODUCER_ONLY,
        ClientKind.PRODUCER: CONSUMER_ONLY,
        ClientKind.ADMIN: CONSUMER_ONLY | PRODUCER_ONLY,
    }[kind]
    return {name: value for name, value in config.items() if name not in foreign}


def rebalances_incrementally(config: Mapping[str, object]) -> bool:
    """True when a consumer of ``config`` is given and takes partitions a few at a time (``incremental_assign``):
    under the consumer group protocol, or a cooperative assignor of the classic one."""
    if str(config.get("group.protocol", "classic")).lower() == CONSUMER_PROTOCOL:
        return True
    return "cooperative" in str(config.get("partition.assignment.strategy", "")).lower()


def offset_reader_config(config: Mapping[str, Any], group: str, client_id: str) -> dict[str, Any]:
    """Settings for a consumer that only asks ``group``'s committed offsets (``committed()``): the consumer part
    of ``config`` and the group's id, quiet, and never committing or storing an offset. It must never be
    subscribed or assigned, so it never joins the group."""
    return {
        "client.id": client_id,
        "log_level": 0,  # quiet: the runner's own consumer reports the same cluster
        **for_client(ClientKind.CONSUMER, config),
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    }
