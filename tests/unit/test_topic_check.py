"""Topics the runner cannot use, each named as what it is (a source topic or a retry tier topic): missing ones keep
``/readyz`` not ready; a refused READ ends the run naming the topic."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from confluent_kafka import KafkaError
from prometheus_client import CollectorRegistry

from neotool_common.clock import SystemClock
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer.client_events import ClientEvents
from neotool_common.consumer.context import RunContext
from neotool_common.consumer.topic_check import SourceTopics
from neotool_common.deadletter.circuit import CircuitBreaker
from neotool_common.observability.health import HealthServer, HealthState
from neotool_common.observability.metrics import ConsumerMetrics
from neotool_common.testing.logs import capture_logs

SOURCE = "bank.v1"
TIER = f"{SOURCE}.retry.g.30s"


class Cluster:
    def __init__(self, *topics: str) -> None:
        self.topics = set(topics)

    def list_topics(self, timeout: float = -1) -> SimpleNamespace:
        return SimpleNamespace(topics=dict.fromkeys(self.topics))


def context(**env: str) -> RunContext:
    base = {"KAFKA_BROKERS": "127.0.0.1:9", "KAFKA_TOPICS": SOURCE, "KAFKA_GROUP_ID": "g", "METRICS_PORT": "0"}
    settings = RunnerSettings.from_env({**base, **env})
    health = HealthState(300)
    health.set_connected(True)
    health.set_running(True)
    metrics = ConsumerMetrics(CollectorRegistry(), "g")
    return RunContext(settings, SystemClock(), metrics, health, CircuitBreaker(settings.circuit),
                      structlog.get_logger("test"))  # fmt: skip


def readyz(health: HealthState) -> tuple[int, dict[str, Any]]:
    with HealthServer(0, CollectorRegistry(), health, host="127.0.0.1") as server:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/readyz", timeout=5) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


def test_a_missing_retry_tier_topic_is_named_as_a_retry_tier_topic_not_a_source() -> None:
    ctx = context(RETRY_TOPIC_DELAYS_MS="30000")
    cluster = Cluster(SOURCE)
    check = SourceTopics(ctx, cluster)
    with capture_logs() as events:
        check.check(0.0)
    ready = ctx.health.readiness()
    assert (ready.missing_topics, ready.missing_tier_topics, ready.ok) == ((), (TIER,), False)
    status, body = readyz(ctx.health)
    assert (status, body["reason"]) == (503, f"retry tier topics do not exist: {TIER}")
    (warning,) = [e for e in events if e["level"] == "warning"]
    assert warning["event"].startswith("retry tier topics do not exist")
    assert warning["missing_retry_topics"] == [TIER]
    assert "missing_topics" not in warning

    cluster.topics.add(TIER)
    check.check(10.0)
    assert ctx.health.readiness().ok


def test_a_missing_source_and_a_missing_tier_are_each_named_as_what_they_are() -> None:
    ctx = context(RETRY_TOPIC_DELAYS_MS="30000")
    SourceTopics(ctx, Cluster()).check(0.0)
    _, body = readyz(ctx.health)
    assert body["reason"] == f"source topics do not exist: {SOURCE}; retry tier topics do not exist: {TIER}"


def test_without_tiers_a_missing_source_reads_as_before() -> None:
    ctx = context()
    SourceTopics(ctx, Cluster()).check(0.0)
    _, body = readyz(ctx.health)
    assert body["reason"] == f"source topics do not exist: {SOURCE}"


@pytest.mark.parametrize(
    ("topic", "named"),
    [
        pytest.param(TIER, f"READ on topic {TIER} (a retry tier topic of the group)", id="tier"),
        pytest.param(SOURCE, f"READ on topic {SOURCE} (a source topic)", id="source"),
        pytest.param(None, "READ on the source topics", id="no topic given"),
    ],
)
def test_a_refused_read_is_fatal_and_names_the_topic_and_what_it_is(topic: str | None, named: str) -> None:
    events = ClientEvents(context(RETRY_TOPIC_DELAYS_MS="30000"))
    events.on_message_error(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "Topic authorization failed"), topic)
    assert events.fatal is not None
    assert f"the principal needs {named} " in str(events.fatal)
