"""Where a test's broker comes from: ``NEOTOOL_TEST_KAFKA_BROKERS``, else Docker (testcontainers), else local jars.

The tests create and delete topics and groups: they never go to a cluster exported for other reasons
(``KAFKA_BROKERS``, ``KAFKA_BOOTSTRAP_SERVERS``), only to one named by a variable of their own.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Mapping

from neotool_common.testing.kafka.cluster import LocalKafkaCluster
from neotool_common.testing.kafka.endpoint import TEST_GROUP_SETTINGS, KafkaEndpoint

__all__ = ["TEST_BROKERS_ENV", "provide_kafka"]

TEST_BROKERS_ENV = "NEOTOOL_TEST_KAFKA_BROKERS"


@contextlib.contextmanager
def provide_kafka(nodes: int = 1, broker_config: Mapping[str, str] | None = None) -> Iterator[KafkaEndpoint]:
    """A broker by the documented resolution order: env, then Docker (testcontainers), then local jars."""
    external = os.environ.get(TEST_BROKERS_ENV, "").strip()
    if external:
        yield KafkaEndpoint(external, replication_factor=min(3, nodes))
        return
    if nodes == 1 and not broker_config and _docker_available():
        with _testcontainers_kafka() as endpoint:
            yield endpoint
        return
    with LocalKafkaCluster(nodes, broker_config=broker_config) as cluster:
        yield cluster


def _docker_available() -> bool:
    """True when a Docker engine answers ``/_ping`` on ``DOCKER_HOST`` or the default socket."""
    if os.environ.get("NEOTOOL_KAFKA_NO_DOCKER"):
        return False
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = host.removeprefix("unix://")
        elif host.startswith("tcp://"):
            name, _, port = host.removeprefix("tcp://").partition(":")
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (name, int(port or 2375))
        else:
            return False
        with sock:
            sock.settimeout(2)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(64)
        return reply.startswith(b"HTTP/1.") and b" 200 " in reply
    except OSError:
        return False


@contextlib.contextmanager
def _testcontainers_kafka() -> Iterator[KafkaEndpoint]:  # pragma: no cover - there is no Docker engine on CI here
    from testcontainers.kafka import KafkaContainer  # noqa: PLC0415 - dev dependency, Docker only

    container = KafkaContainer().with_kraft()
    for name, value in TEST_GROUP_SETTINGS.items():  # the image maps KAFKA_A_B to broker property a.b
        container.with_env("KAFKA_" + name.upper().replace(".", "_"), value)
    with container:
        yield KafkaEndpoint(container.get_bootstrap_server())
