"""pytest fixtures for code built on neotool-common: a real Kafka broker and unique topics.

Loaded automatically (a ``pytest11`` entry point) wherever neotool-common is installed. The broker is
started once per test session by the resolution order of :func:`neotool_common.testing.kafka.provide_kafka`;
a failing test that used it gets the broker log tail in its report.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from neotool_common.testing.kafka import KafkaEndpoint, provide_kafka
from neotool_common.testing.kafka.secured import SecuredKafkaCluster

__all__ = [
    "kafka",
    "kafka_cluster3",
    "make_topic",
    "pytest_runtest_makereport",
    "secured_kafka",
    "secured_kafka_cluster3",
    "topic_name",
    "unique_topic_name",
]

_endpoints: list[KafkaEndpoint] = []


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaEndpoint]:
    """A single-node Kafka broker shared by the whole session."""
    with provide_kafka(nodes=1) as endpoint:
        _endpoints.append(endpoint)
        yield endpoint
        _endpoints.remove(endpoint)


@pytest.fixture(scope="session")
def kafka_cluster3() -> Iterator[KafkaEndpoint]:
    """A three-node KRaft cluster (replication factor 3) for failover scenarios."""
    with provide_kafka(nodes=3) as endpoint:
        _endpoints.append(endpoint)
        yield endpoint
        _endpoints.remove(endpoint)


@pytest.fixture(scope="session")
def secured_kafka() -> Iterator[SecuredKafkaCluster]:
    """A single-node broker that authenticates (SCRAM over TLS, mutual TLS) and authorizes (ACLs) every client.

    Always local jars (``KAFKA_BOOTSTRAP_SERVERS`` and Docker are not used): see
    :mod:`neotool_common.testing.kafka.secured`.
    """
    with SecuredKafkaCluster(1) as cluster:
        _endpoints.append(cluster)
        yield cluster
        _endpoints.remove(cluster)


@pytest.fixture(scope="session")
def secured_kafka_cluster3() -> Iterator[SecuredKafkaCluster]:
    """Three secured nodes (replication factor 3); the brokers talk to each other over mutual TLS."""
    with SecuredKafkaCluster(3) as cluster:
        _endpoints.append(cluster)
        yield cluster
        _endpoints.remove(cluster)


def unique_topic_name(request: pytest.FixtureRequest) -> str:
    test = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name).strip("-")[:80]
    return f"t.{test}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name no other test uses (the topic itself is not created)."""
    return unique_topic_name(request)


@pytest.fixture
def make_topic(kafka: KafkaEndpoint, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Create a uniquely named topic: ``make_topic(partitions=3, suffix=".dlq")`` returns its name."""

    def factory(partitions: int = 1, *, name: str | None = None, config: dict[str, str] | None = None) -> str:
        return kafka.create_topic(name or unique_topic_name(request), partitions, config=config)

    return factory


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if (
        report.failed
        and _endpoints
        and {"kafka", "kafka_cluster3", "secured_kafka", "secured_kafka_cluster3"}
        & set(getattr(item, "fixturenames", ()))
    ):
        for endpoint in _endpoints:
            tail = endpoint.log_tail()
            if tail:
                report.sections.append(("Kafka broker log", tail))
