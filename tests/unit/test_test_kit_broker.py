"""The test kit's broker: only its own variable points it at an existing cluster, never a user's KAFKA_BROKERS."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from neotool_common.testing.kafka import provider
from neotool_common.testing.kafka.endpoint import KafkaEndpoint
from neotool_common.testing.kafka.provider import TEST_BROKERS_ENV, provide_kafka


@pytest.fixture
def local_broker(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Stands in for the local cluster the kit would start; records each start."""
    started: list[int] = []

    @contextlib.contextmanager
    def fake_cluster(nodes: int, **_: Any) -> Iterator[KafkaEndpoint]:
        started.append(nodes)
        yield KafkaEndpoint("127.0.0.1:1")

    monkeypatch.setattr(provider, "LocalKafkaCluster", fake_cluster)
    monkeypatch.setenv("NEOTOOL_KAFKA_NO_DOCKER", "1")
    monkeypatch.delenv(TEST_BROKERS_ENV, raising=False)
    return started


def test_a_users_exported_kafka_brokers_is_ignored(local_broker: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BROKERS", "prod-kafka:9092")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "prod-kafka:9092")
    with provide_kafka() as endpoint:
        assert endpoint.bootstrap_servers == "127.0.0.1:1"
    assert local_broker == [1], "the kit started its own broker"


def test_the_kits_own_variable_points_it_at_an_existing_cluster(
    local_broker: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TEST_BROKERS_ENV, "ci-kafka:9092")
    with provide_kafka() as endpoint:
        assert endpoint.bootstrap_servers == "ci-kafka:9092"
    assert local_broker == []
