"""Shared pieces of the runner's integration tests: envelopes, a producer, and test consumers."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.errors import PoisonMessageError
from neotool_common.records.message import Message

BATCH_ID = str(uuid.uuid4())


def envelope(record_id: str, payload: Mapping[str, Any] | None = None) -> bytes:
    return json.dumps(
        {
            "batch_id": BATCH_ID,
            "record_id": record_id,
            "ingested_at": datetime.now(UTC).isoformat(),
            "payload": dict(payload or {"n": record_id}),
        }
    ).encode()


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    partition: int = 0,
    config: Mapping[str, Any] | None = None,
) -> None:
    """Write ``(key, value)`` records to one partition, in order; ``config`` adds producer settings."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, **(config or {})})
    for key, value in records:
        producer.produce(topic, value=value, key=key, partition=partition)
    assert producer.flush(30) == 0


# The group protocols a rebalance test runs under, as the environment that selects each one.
GROUP_PROTOCOLS: dict[str, dict[str, str]] = {
    "classic-eager": {"KAFKA_CONFIG_PARTITION_ASSIGNMENT_STRATEGY": "range"},  # every change revokes everything
    "classic-cooperative": {},  # the runner's default: cooperative-sticky
    "consumer": {"KAFKA_CONFIG_GROUP_PROTOCOL": "consumer"},  # KIP-848: the broker assigns, incrementally
}
# ``@every_group_protocol`` runs a test once per protocol; the test takes ``protocol`` (its environment).
every_group_protocol = pytest.mark.parametrize(
    "protocol", [pytest.param(env, id=name) for name, env in GROUP_PROTOCOLS.items()]
)


def uses_consumer_protocol(env: Mapping[str, str]) -> bool:
    return env.get("KAFKA_CONFIG_GROUP_PROTOCOL", "classic").lower() == "consumer"


def group_timing(env: Mapping[str, str], session_ms: int = 6000, heartbeat_ms: int = 500) -> dict[str, str]:
    """A fast group session for the classic protocol; nothing under the consumer protocol, whose session and
    heartbeat are the broker's (the test kit sets 6 s and 0.5 s) and which refuses the client settings."""
    if uses_consumer_protocol(env):
        return {}
    return {"KAFKA_CONFIG_SESSION_TIMEOUT_MS": str(session_ms), "KAFKA_CONFIG_HEARTBEAT_INTERVAL_MS": str(heartbeat_ms)}


def settings_for(bootstrap: str, topic: str, group: str | None = None, **env: str) -> RunnerSettings:
    """Test settings; ``env`` adds to them (``**GROUP_PROTOCOLS[name]`` picks a group protocol)."""
    base = {
        "KAFKA_BROKERS": bootstrap,
        "KAFKA_TOPICS": topic,
        "KAFKA_GROUP_ID": group or f"g-{uuid.uuid4().hex[:8]}",
        "METRICS_PORT": "0",
        "RETRY_BACKOFF_INITIAL_MS": "20",
        "RETRY_BACKOFF_MAX_MS": "100",
        "COMMIT_INTERVAL_MS": "100",
        "DLQ_WRITE_TIMEOUT_MS": "5000",
        **group_timing(env),
    }
    base.update(env)
    return RunnerSettings.from_env(base)


class RecordingConsumer(KafkaConsumerRunner):
    """Records what it processed; raises as told by the payload: {"fail": n} fails n times, {"poison": true}."""

    group_id = "recording"
    topics: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: RunnerSettings, **kwargs: Any) -> None:
        super().__init__(settings, registry=kwargs.pop("registry", CollectorRegistry()), **kwargs)
        self.processed: list[Message] = []
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()

    def process(self, message: Message) -> None:
        with self.lock:
            self.attempts[message.record_id] = self.attempts.get(message.record_id, 0) + 1
            attempt = self.attempts[message.record_id]
        payload = message.payload
        if payload.get("poison"):
            raise PoisonMessageError("routing number fails its checksum", "$.payload.routing_number")
        if attempt <= int(payload.get("fail", 0)):
            raise ConnectionError(f"enrichment service unavailable (attempt {attempt})")
        with self.lock:
            self.processed.append(message)
