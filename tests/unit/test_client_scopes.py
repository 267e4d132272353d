"""Each client gets only its own librdkafka settings, checked with the real library (no broker needed).

librdkafka logs ``CONFWARN … is a consumer property and will be ignored by this producer instance`` for every
setting of the other kind of client; those warnings are collected here through confluent-kafka's ``logger``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from neotool_common.config.clients import (
    CONSUMER_ONLY,
    PRODUCER_ONLY,
    ClientKind,
    for_client,
    rebalances_incrementally,
)
from neotool_common.config.connection import KafkaConnection
from neotool_common.config.settings import RunnerSettings
from neotool_common.dlqtool.cluster import DlqCluster
from neotool_common.producing.producer import EnvelopeProducer

NOWHERE = "127.0.0.1:9"  # nothing listens: the clients are built and dropped, never connected
# User settings of every kind: consumer-only, producer-only, and global ones that go to every client.
MIXED = {
    "KAFKA_CONFIG_GROUP_INSTANCE_ID": "enrich-0",
    "KAFKA_CONFIG_MAX_POLL_INTERVAL_MS": "600000",
    "KAFKA_CONFIG_FETCH_MAX_BYTES": "1048576",
    "KAFKA_CONFIG_ISOLATION_LEVEL": "read_committed",
    "KAFKA_CONFIG_LINGER_MS": "8",
    "KAFKA_CONFIG_BATCH_SIZE": "500000",
    "KAFKA_CONFIG_CLIENT_RACK": "eu-west-1a",
    "KAFKA_CONFIG_SOCKET_KEEPALIVE_ENABLE": "true",
}
RUNNER_ENV = {"KAFKA_BROKERS": NOWHERE, "KAFKA_TOPICS": "bank.v1", "KAFKA_GROUP_ID": "enrich", **MIXED}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def librdkafka_log() -> Iterator[tuple[logging.Logger, list[str]]]:
    logger = logging.getLogger(f"librdkafka.{id(object())}")
    handler = _Lines()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, handler.lines
    logger.removeHandler(handler)


def confwarns(client: Callable[[dict[str, Any]], Any], config: Mapping[str, Any], logger: logging.Logger) -> list[str]:
    """The CONFWARN lines librdkafka logs while a client of ``config`` is created."""
    handle = client({**config, "logger": logger})
    handle.poll(0.1)  # the log queue is served by poll()
    lines = [line for line in logger.handlers[0].lines if "CONFWARN" in line]  # type: ignore[attr-defined]
    if isinstance(handle, Consumer):
        handle.close()
    return lines


def test_the_split_keeps_global_settings_for_every_client_and_the_others_for_their_own() -> None:
    config = {"group.instance.id": "a", "linger.ms": 5, "client.rack": "r", "some.future.setting": "x"}
    assert for_client(ClientKind.CONSUMER, config) == {
        "group.instance.id": "a",
        "client.rack": "r",
        "some.future.setting": "x",
    }
    assert for_client(ClientKind.PRODUCER, config) == {"linger.ms": 5, "client.rack": "r", "some.future.setting": "x"}
    assert for_client(ClientKind.ADMIN, config) == {"client.rack": "r", "some.future.setting": "x"}
    assert not CONSUMER_ONLY & PRODUCER_ONLY


def test_the_runners_two_clients_get_no_setting_librdkafka_would_ignore(
    librdkafka_log: tuple[logging.Logger, list[str]],
) -> None:
    logger, _ = librdkafka_log
    settings = RunnerSettings.from_env(RUNNER_ENV)
    unsplit = {**settings.connection.client_config(), **settings.dlq_producer_config()}
    assert confwarns(Producer, unsplit, logger), "the check can fail: every setting to the producer warns"
    logger.handlers[0].lines.clear()  # type: ignore[attr-defined]
    assert confwarns(Producer, settings.dlq_producer_config(), logger) == []
    assert confwarns(Consumer, settings.consumer_config(), logger) == []


def test_the_envelope_producer_leaves_a_consumers_settings_out() -> None:
    built: list[dict[str, Any]] = []

    def factory(config: dict[str, Any]) -> Any:
        built.append(config)
        return Producer({**config, "log_level": 0})

    EnvelopeProducer(KafkaConnection.from_env(RUNNER_ENV), producer_factory=factory)
    (config,) = built
    assert config["linger.ms"] == "8", "a KAFKA_CONFIG_* producer setting still wins"
    assert not {"group.instance.id", "max.poll.interval.ms", "fetch.max.bytes", "isolation.level"} & set(config)


# -- neotool-dlq's clients ---------------------------------------------------------------------------------


def dlq_cluster(**env: str) -> DlqCluster:
    return DlqCluster(KafkaConnection.from_env({"KAFKA_BROKERS": NOWHERE, **env}))


def test_dlq_tool_clients_get_no_setting_librdkafka_would_ignore(
    librdkafka_log: tuple[logging.Logger, list[str]],
) -> None:
    logger, _ = librdkafka_log
    cluster = dlq_cluster(**MIXED, KAFKA_CONFIG_SESSION_TIMEOUT_MS="10000")
    assert confwarns(Producer, cluster.producer_config(), logger) == []
    assert confwarns(Consumer, cluster.reader_config(), logger) == []
    assert confwarns(Consumer, cluster.group_consumer_config("replay-1", 6000), logger) == []
    assert confwarns(AdminClient, cluster.common_config(), logger) == []
    assert cluster.group_consumer_config("replay-1", 6000)["session.timeout.ms"] == "10000", "the user's wins"


def test_the_replay_group_consumer_sets_a_session_timeout_under_the_classic_protocol_only() -> None:
    classic = dlq_cluster().group_consumer_config("replay-1", 6000)
    assert classic["session.timeout.ms"] == 6000
    assert not dlq_cluster().group_rebalances_incrementally, "librdkafka's default assignors are eager"
    consumer = dlq_cluster(KAFKA_CONFIG_GROUP_PROTOCOL="consumer").group_consumer_config("replay-1", 6000)
    assert consumer["group.protocol"] == "consumer"
    assert not {"session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy"} & set(consumer)
    assert (consumer["enable.auto.commit"], consumer["group.id"]) == (False, "replay-1")
    Consumer({**consumer, "log_level": 0}).close()  # librdkafka accepts it (it refused session.timeout.ms)


@pytest.mark.parametrize(
    ("env", "incremental"),
    [
        ({}, False),
        ({"KAFKA_CONFIG_PARTITION_ASSIGNMENT_STRATEGY": "range"}, False),
        ({"KAFKA_CONFIG_PARTITION_ASSIGNMENT_STRATEGY": "cooperative-sticky"}, True),
        ({"KAFKA_CONFIG_GROUP_PROTOCOL": "consumer"}, True),
    ],
)
def test_the_replay_knows_whether_its_group_assigns_incrementally(env: dict[str, str], incremental: bool) -> None:
    assert dlq_cluster(**env).group_rebalances_incrementally is incremental
    assert rebalances_incrementally(dlq_cluster(**env).group_consumer_config("g")) is incremental


def test_the_classic_session_timeout_is_the_users_or_the_tools_default() -> None:
    assert dlq_cluster().session_timeout_ms(6000) == 6000
    assert dlq_cluster(KAFKA_CONFIG_SESSION_TIMEOUT_MS="1500").session_timeout_ms(6000, "g") == 1500
