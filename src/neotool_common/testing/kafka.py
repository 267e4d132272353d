"""A real Apache Kafka broker (KRaft mode) for tests, the demo and the benchmarks.

Where a broker comes from, in order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` is set: that cluster is used as it is.
2. A Docker engine answers: testcontainers' Kafka module starts one.
3. Otherwise the broker jars are resolved from Maven Central with the machine's ``mvn`` (cached under
   ``~/.cache/neotool-common``), KRaft storage is formatted in a temporary folder, and one node or an
   N-node cluster is started with the machine's Java (17+) on 127.0.0.1 and free ports.

Every node runs in its own JVM, logs to ``<workdir>/node-<id>/broker.log`` and is stopped by its PID.
Started from Python, a node also dies with the process that started it (``PR_SET_PDEATHSIG``), so an
interrupted test run leaves no JVM behind.

Command line::

    python -m neotool_common.testing.kafka run [--nodes 3]     # foreground until Ctrl+C
    python -m neotool_common.testing.kafka classpath           # resolve and print the jars' classpath
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Self

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

__all__ = [
    "KAFKA_VERSION",
    "TEST_GROUP_SETTINGS",
    "BrokerNode",
    "KafkaEndpoint",
    "LocalKafkaCluster",
    "kafka_classpath",
    "provide_kafka",
]

KAFKA_VERSION = "4.3.0"
_READY_TIMEOUT_S = 90.0
_STOP_GRACE_S = 20.0


# Fast group membership for tests, under both group protocols. Classic: the client picks its session timeout
# (the broker rejects one below the minimum). Consumer protocol (KIP-848): the broker sets the session and the
# heartbeat, 45 s and 5 s by default, and a group may lower them (consumer.session.timeout.ms) down to the
# minimums; 6 s / 0.5 s make a vanished member expire as fast as the classic tests' 6 s sessions.
TEST_GROUP_SETTINGS: Mapping[str, str] = {
    "group.min.session.timeout.ms": "1000",
    "group.consumer.min.session.timeout.ms": "1000",
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.heartbeat.interval.ms": "100",
    "group.consumer.heartbeat.interval.ms": "500",
}


def cache_dir() -> Path:
    base = os.environ.get("NEOTOOL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "neotool-common"
    )
    return Path(base)


def kafka_classpath(version: str = KAFKA_VERSION) -> str:
    """The broker's classpath, resolved once with ``mvn`` and cached outside the repository."""
    target = cache_dir() / f"kafka-{version}"
    cp_file = target / "classpath.txt"
    if cp_file.exists():
        classpath = cp_file.read_text().strip()
        if classpath and all(Path(jar).exists() for jar in classpath.split(os.pathsep)):
            return classpath
    if shutil.which("mvn") is None:
        raise RuntimeError(
            "Maven (mvn) is needed to fetch the Kafka broker jars; install it or set KAFKA_BOOTSTRAP_SERVERS"
        )
    target.mkdir(parents=True, exist_ok=True)
    pom = target / "pom.xml"
    pom.write_bytes(resources.files("neotool_common.testing.broker").joinpath("pom.xml").read_bytes())
    partial = target / "classpath.txt.partial"
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(pom),
            f"-Dkafka.version={version}",
            "dependency:build-classpath",
            f"-Dmdep.outputFile={partial}",
            "-Dmdep.includeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"mvn could not resolve Kafka {version}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    partial.replace(cp_file)
    return cp_file.read_text().strip()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


@dataclass
class BrokerNode:
    """One KRaft node that is both broker and controller."""

    node_id: int
    port: int
    controller_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.directory / "broker.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None


class KafkaEndpoint:
    """A reachable cluster: where it is, and a few admin helpers the tests and the demo need."""

    def __init__(self, bootstrap_servers: str, replication_factor: int = 1) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.replication_factor = replication_factor
        self._admin: AdminClient | None = None

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        return self._admin

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int | None = None,
        config: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> str:
        """Create ``name`` and wait until every partition has a leader. Idempotent."""
        rf = replication_factor or self.replication_factor
        futures = self.admin.create_topics([NewTopic(name, partitions, rf, config=dict(config or {}))])
        try:
            futures[name].result(timeout)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
        self.wait_for_topic(name, partitions, timeout)
        return name

    def wait_for_topic(self, name: str, partitions: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            meta = self.admin.list_topics(name, timeout=5).topics.get(name)
            if (
                meta is not None
                and meta.error is None
                and len(meta.partitions) == partitions
                and all(p.leader >= 0 for p in meta.partitions.values())
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {name} has no leader for all {partitions} partitions after {timeout}s")
            time.sleep(0.05)

    def delete_topic(self, name: str, timeout: float = 30.0) -> None:
        self.admin.delete_topics([name])[name].result(timeout)

    def log_tail(self, lines: int = 60) -> str:
        return ""


class LocalKafkaCluster(KafkaEndpoint):
    """An N-node KRaft cluster of real Apache Kafka brokers on 127.0.0.1, each node in its own JVM."""

    def __init__(
        self,
        nodes: int = 1,
        *,
        workdir: Path | None = None,
        version: str = KAFKA_VERSION,
        broker_config: Mapping[str, str] | None = None,
        heap: str = "512m",
        die_with_parent: bool = True,
    ) -> None:
        self.nodes_count = nodes
        self.version = version
        self.broker_config = dict(broker_config or {})
        self.heap = heap
        self.die_with_parent = die_with_parent
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="neotool-kafka-"))
        self.nodes = [BrokerNode(i + 1, free_port(), free_port(), self.workdir / f"node-{i + 1}") for i in range(nodes)]
        super().__init__(",".join(f"127.0.0.1:{n.port}" for n in self.nodes), replication_factor=min(3, nodes))
        self._classpath = ""

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = _READY_TIMEOUT_S) -> Self:
        self._classpath = kafka_classpath(self.version)
        cluster_id = uuid.uuid4().hex[:22]
        for node in self.nodes:
            self._format(node, cluster_id)
        for node in self.nodes:
            self.start_node(node.node_id, wait=False)
        self.wait_ready(timeout)
        return self

    def stop(self) -> None:
        """Stop every node by PID: SIGTERM to all at once (a lone last node cannot finish a controlled
        shutdown without its quorum), SIGKILL for any node still running after the grace period."""
        self._admin = None  # close the admin connection before its brokers go away
        running = [n.process for n in self.nodes if n.process is not None and n.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + _STOP_GRACE_S / 2
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- single nodes (for fault injection) ----------------------------------------------------

    def node(self, node_id: int) -> BrokerNode:
        return self.nodes[node_id - 1]

    def start_node(self, node_id: int, wait: bool = True, timeout: float = _READY_TIMEOUT_S) -> None:
        node = self.node(node_id)
        if node.pid is not None:
            return
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("Java 17+ (java) is needed to run the local Kafka broker")
        log4j = resources.files("neotool_common.testing.broker").joinpath("log4j2.properties")
        command = [
            java,
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.file={node.log_path}",
            "-cp",
            self._classpath,
            "kafka.Kafka",
            str(node.directory / "server.properties"),
        ]
        stdout = (node.directory / "stdout.log").open("ab")
        node.process = subprocess.Popen(
            command,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if self.die_with_parent else None,  # noqa: PLW1509 - only prctl, no locks
        )
        stdout.close()
        if wait:
            self.wait_ready(timeout, expected_brokers=sum(1 for n in self.nodes if n.pid is not None))

    def stop_node(self, node_id: int, hard: bool = False, timeout: float = _STOP_GRACE_S) -> None:
        """Stop one node by its PID: SIGTERM (a clean shutdown) or, with ``hard``, SIGKILL."""
        node = self.node(node_id)
        process = node.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def wait_ready(self, timeout: float = _READY_TIMEOUT_S, expected_brokers: int | None = None) -> None:
        """Wait until the cluster answers a metadata request listing ``expected_brokers`` brokers."""
        expected = self.nodes_count if expected_brokers is None else expected_brokers
        deadline = time.monotonic() + timeout
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        while True:
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None and node.pid is None and expected:
                    dead = [n for n in self.nodes if n.process is not None and n.process.poll() is not None]
                    if len(dead) > self.nodes_count - expected:
                        raise RuntimeError(f"Kafka node {node.node_id} exited:\n{self.log_tail()}")
            if any(_port_open(n.port) for n in self.nodes if n.pid is not None):
                with contextlib.suppress(Exception):
                    if len(admin.list_topics(timeout=2).brokers) >= expected:
                        return
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka not ready after {timeout}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 60) -> str:
        chunks = []
        for node in self.nodes:
            for path in (node.log_path, node.directory / "stdout.log"):
                if path.exists():
                    text = path.read_text(errors="replace").splitlines()[-lines:]
                    chunks.append(f"--- {path} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(chunks)

    # -- configuration -------------------------------------------------------------------------

    def _format(self, node: BrokerNode, cluster_id: str) -> None:
        node.directory.mkdir(parents=True, exist_ok=True)
        properties = node.directory / "server.properties"
        properties.write_text("".join(f"{k}={v}\n" for k, v in self._server_properties(node).items()))
        result = subprocess.run(
            [
                "java",
                "-Xmx256m",
                "-cp",
                self._classpath,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(properties),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"formatting KRaft storage failed: {result.stdout}{result.stderr}")

    def _server_properties(self, node: BrokerNode) -> dict[str, str]:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        replicas = str(min(3, self.nodes_count))
        properties = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(node.directory / "data"),
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Topics exist because someone created them: a missing DLQ topic must show, not appear.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "default.replication.factor": replicas,
            "log.segment.bytes": str(64 * 1024 * 1024),
            "log.retention.check.interval.ms": "600000",
            **TEST_GROUP_SETTINGS,
        }
        properties.update(self.broker_config)
        return properties


@contextlib.contextmanager
def provide_kafka(nodes: int = 1, broker_config: Mapping[str, str] | None = None) -> Iterator[KafkaEndpoint]:
    """A broker by the documented resolution order: env, then Docker (testcontainers), then local jars."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="neotool-kafka", description="A local Apache Kafka (KRaft) for development")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start a cluster and keep it running until Ctrl+C or SIGTERM")
    run.add_argument("--nodes", type=int, default=1)
    sub.add_parser("classpath", help="resolve the broker jars and print their classpath")
    args = parser.parse_args(argv)
    if args.command == "classpath":
        print(kafka_classpath())
        return 0
    stop = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with LocalKafkaCluster(args.nodes) as cluster:
        print(f"KAFKA_BOOTSTRAP_SERVERS={cluster.bootstrap_servers}", flush=True)
        print(f"logs: {cluster.workdir}", flush=True)
        while not stop:
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
