"""A local N-node KRaft cluster: each node's configuration, its JVM (stopped by PID, logging to
``<workdir>/node-<id>/broker.log``, dying with its parent so an interrupted run leaves none behind), readiness.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Self

from confluent_kafka.admin import AdminClient

from neotool_common.testing.kafka.endpoint import TEST_GROUP_SETTINGS, KafkaEndpoint
from neotool_common.testing.kafka.jars import KAFKA_VERSION, kafka_classpath

__all__ = ["BrokerNode", "LocalKafkaCluster", "free_port"]

_READY_TIMEOUT_S = 90.0
_STOP_GRACE_S = 20.0


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
    # (advertised port, listening port) of each extra listener a proxy goes in front of (see LocalKafkaCluster)
    proxied: tuple[tuple[int, int], ...] = ()

    @property
    def log_path(self) -> Path:
        return self.directory / "broker.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None and self.process.poll() is None else None


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
        port: int | None = None,
        proxied_listeners: int = 0,
    ) -> None:
        """``port``: the first node's client port (free ports otherwise), so that a restart keeps its address.

        ``proxied_listeners``: each node gets that many more listeners (``PROXIED1``…), each advertising another
        free port instead of its own, for a proxy a test puts there (``node.proxied``: (advertised, listening)
        ports): a client that bootstraps through the proxy is sent back through it for every connection."""
        self.nodes_count = nodes
        self.version = version
        self.broker_config = dict(broker_config or {})
        self.heap = heap
        self.die_with_parent = die_with_parent
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="neotool-kafka-"))
        ports = [port or free_port(), *(free_port() for _ in range(nodes - 1))]
        self.nodes = [
            BrokerNode(
                i + 1,
                ports[i],
                free_port(),
                self.workdir / f"node-{i + 1}",
                proxied=tuple((free_port(), free_port()) for _ in range(proxied_listeners)),
            )
            for i in range(nodes)
        ]
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
        command = self._java_command(node)
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

    def _java_command(self, node: BrokerNode) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("Java 17+ (java) is needed to run the local Kafka broker")
        log4j = resources.files("neotool_common.testing.broker").joinpath("log4j2.properties")
        return [
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
        admin = AdminClient({**self.client_config(), "log_level": 0})
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
                *self._format_arguments(node),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"formatting KRaft storage failed: {result.stdout}{result.stderr}")

    def _format_arguments(self, node: BrokerNode) -> list[str]:
        """More ``kafka-storage format`` arguments for ``node`` (a secured cluster adds its SCRAM users)."""
        return []

    def _server_properties(self, node: BrokerNode) -> dict[str, str]:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        replicas = str(min(3, self.nodes_count))
        properties = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
            + "".join(f",PROXIED{i}://127.0.0.1:{back}" for i, (_, back) in enumerate(node.proxied, 1)),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}"
            + "".join(f",PROXIED{i}://127.0.0.1:{front}" for i, (front, _) in enumerate(node.proxied, 1)),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
            + "".join(f",PROXIED{i}:PLAINTEXT" for i in range(1, len(node.proxied) + 1)),
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
