"""The project's own Kafka launcher: N-node KRaft clusters, stopped by PID, never outliving their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from confluent_kafka import Producer
from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]

from neotool_common.testing.harness import read_topic, wait_until
from neotool_common.testing.kafka import TEST_GROUP_SETTINGS, LocalKafkaCluster, free_port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead for our purpose
        return stat.read().split()[2] != "Z"


def test_broker_dies_with_the_process_that_started_it() -> None:
    script = textwrap.dedent("""
        import sys, time
        from neotool_common.testing.kafka import TEST_GROUP_SETTINGS, LocalKafkaCluster, free_port
        cluster = LocalKafkaCluster().start()
        print(cluster.nodes[0].process.pid, flush=True)
        time.sleep(600)
    """)
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        jvm = int(parent.stdout.readline())
        assert _alive(jvm)
        parent.send_signal(signal.SIGKILL)  # no atexit, no finally: only the kernel can clean up
        parent.wait(10)
    wait_until(lambda: not _alive(jvm), timeout=20, what=f"broker JVM {jvm} to exit")


def test_three_node_cluster_survives_losing_a_node() -> None:
    with LocalKafkaCluster(3) as cluster:
        assert len(cluster.admin.list_topics(timeout=10).brokers) == 3
        for node in cluster.nodes:  # fast group sessions under either group protocol, on every node
            resource = ConfigResource(ResourceType.BROKER, str(node.node_id))
            config = cluster.admin.describe_configs([resource])[resource].result(10)
            assert {name: config[name].value for name in TEST_GROUP_SETTINGS} == dict(TEST_GROUP_SETTINGS)
        topic = cluster.create_topic("replicated", partitions=3, config={"min.insync.replicas": "2"})
        meta = cluster.admin.list_topics(topic, timeout=10).topics[topic]
        assert all(len(p.replicas) == 3 for p in meta.partitions.values())

        cluster.stop_node(1, hard=True)
        assert cluster.node(1).pid is None
        producer = Producer({"bootstrap.servers": cluster.bootstrap_servers, "acks": "all", "enable.idempotence": True})
        for i in range(100):
            producer.produce(topic, key=str(i), value=f"v{i}")
        assert producer.flush(60) == 0
        assert len(read_topic(cluster.bootstrap_servers, topic, expect=100)) == 100
        pids = [n.pid for n in cluster.nodes if n.pid is not None]
    assert len(pids) == 2
    assert not any(_alive(pid) for pid in pids), "stop() ends every node by PID"


def test_neotool_kafka_run_prints_a_line_to_export_and_keeps_its_port_across_restarts() -> None:
    port = free_port()
    command = [sys.executable, "-m", "neotool_common.testing.kafka", "run", "--port", str(port)]
    for _ in range(2):  # a restart gets the same address
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as run:
            assert run.stdout is not None
            try:
                first = run.stdout.readline().strip()
                assert first == f"export KAFKA_BROKERS=127.0.0.1:{port}"
                producer = Producer({"bootstrap.servers": first.split("=", 1)[1], "log_level": 0})
                assert producer.list_topics(timeout=10).brokers, "the printed address answers"
            finally:
                run.send_signal(signal.SIGTERM)
                assert run.wait(60) == 0
