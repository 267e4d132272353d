"""Scenario 11: the leader of a partition is restarted cleanly five times, then SIGKILLed five times.

A 3-node cluster, topics with replication factor 3 and ``min.insync.replicas=2``: with one node down, writes
(``acks=all``) and the group go on. The consumer keeps processing through every fault, in the same process,
and nothing acknowledged is lost. Each node is back in sync before the next fault.
"""

from __future__ import annotations

from functools import partial

import pytest

from neotool_common.testing.harness import wait_until
from neotool_common.testing.kafka import LocalKafkaCluster
from soak.faults import Fleet, consumer_env
from soak.ledger import Ledger
from soak.scenario import Scale, ScenarioRun
from soak.steps import conclude, create_topics, end_offsets, wait_committed
from soak.workload import ProducerThread

PARTITIONS = 3
REPLICATED = {"min.insync.replicas": "2"}


def leader_of(cluster: LocalKafkaCluster, topic: str, partition: int) -> int:
    return int(cluster.admin.list_topics(topic, timeout=10).topics[topic].partitions[partition].leader)


def in_sync(cluster: LocalKafkaCluster, *topics: str) -> bool:
    metadata = cluster.admin.list_topics(timeout=10).topics
    return all(len(p.isrs) == len(cluster.nodes) for t in topics for p in metadata[t].partitions.values())


def reached(ledger: Ledger, processed: int) -> bool:
    return ledger.processed_count() >= processed


def restart_every_node(cluster: LocalKafkaCluster) -> None:
    for node in cluster.nodes:
        if node.pid is None:
            cluster.start_node(node.node_id)


@pytest.mark.scenario(11, "partition leader restarted, then killed")
@pytest.mark.timeout(1800)
def test_the_consumer_keeps_going_through_leader_restarts_and_kills_and_loses_nothing(
    cluster3: LocalKafkaCluster, scenario: ScenarioRun, scale: Scale
) -> None:
    bootstrap = cluster3.bootstrap_servers
    topic = create_topics(cluster3, scenario, PARTITIONS, config=REPLICATED)
    env = consumer_env(bootstrap, topic, scenario.group, scenario.ledger.path, SOAK_WORK_MS="1")
    rounds = scale.pick(1, 5)
    faults = [False] * rounds + [True] * rounds  # clean stops, then SIGKILLs
    ledger = scenario.ledger
    progress = []

    try:
        with (
            Fleet(env, scenario.workdir, ledger) as fleet,
            ProducerThread(bootstrap, topic, "leader", PARTITIONS, rate=100, poison_every=150) as producer,
        ):
            member = fleet.start()
            fleet.wait_working(member)
            for hard in faults:
                leader = leader_of(cluster3, topic, 0)
                before = ledger.processed_count()
                cluster3.stop_node(leader, hard=hard)
                going = partial(reached, ledger, before + 100)
                fleet.watch(going, f"the consumer to keep going with node {leader} down", timeout=120)
                progress.append(ledger.processed_count() - before)
                cluster3.start_node(leader)
                wait_until(lambda: in_sync(cluster3, topic, topic + ".dlq"), timeout=120, what="replicas in sync")
            produced = producer.stop()
            ends = end_offsets(bootstrap, topic)
            wait_committed(fleet, bootstrap, scenario.group, topic, ends, timeout=300)
            (stopped,) = fleet.stop_all()
            assert stopped.code == 0, member.tail()
            assert len(fleet.members) == 1, "the same process all along"
    finally:
        restart_every_node(cluster3)

    verdict = conclude(scenario, produced, bootstrap, topic)
    scenario.note(
        clean_restarts=rounds,
        kills=rounds,
        records_refused_by_producer=produced.refused,
        processed_while_down=progress,
    )
    verdict.require_within_handoff_windows()
