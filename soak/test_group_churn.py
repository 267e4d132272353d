"""Scenario 10: consumers join and leave the group every few seconds while records keep arriving.

With the eager ``range`` assignor every change revokes every partition; with ``cooperative-sticky`` only the
partitions that move. Either way: nothing lost, every member exits 0 however many of its commits the
rebalances refused, and records are repeated only where no accepted commit covered them at a hand-over.
"""

from __future__ import annotations

import time

import pytest

from neotool_common.testing.kafka import KafkaEndpoint
from soak.faults import FaultSchedule, Fleet, consumer_env
from soak.ledger import EventKind
from soak.scenario import Scale, ScenarioRun
from soak.steps import conclude, create_topics, end_offsets, wait_committed
from soak.workload import ProducerThread

PARTITIONS = 6
MAX_MEMBERS = 4
GRACE_MS = 10_000


@pytest.mark.scenario(10, "group churn")
@pytest.mark.timeout(900)
@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_members_joining_and_leaving_every_few_seconds_lose_nothing_and_never_crash(
    assignor: str, kafka: KafkaEndpoint, scenario: ScenarioRun, scale: Scale, schedule: FaultSchedule
) -> None:
    bootstrap = kafka.bootstrap_servers
    topic = create_topics(kafka, scenario, PARTITIONS)
    env = consumer_env(
        bootstrap,
        topic,
        scenario.group,
        scenario.ledger.path,
        SOAK_WORK_MS="2",
        SHUTDOWN_GRACE_MS=str(GRACE_MS),
        KAFKA_CONFIG_PARTITION_ASSIGNMENT_STRATEGY=assignor,
    )
    duration = scale.pick(20, 120)
    joins = 0
    exits = []

    with (
        Fleet(env, scenario.workdir, scenario.ledger) as fleet,
        ProducerThread(bootstrap, topic, "churn", PARTITIONS, rate=150, poison_every=200) as producer,
    ):
        fleet.start(joins := joins + 1)
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            schedule.delay(1.0, 4.0)
            alive, up = fleet.alive(), fleet.up()
            # Only a member that is up is asked to leave: before its runner installs the SIGTERM handler (still
            # importing, nothing consumed), the signal's default action ends it, which proves nothing here.
            if len(alive) < MAX_MEMBERS and (len(alive) <= 1 or not up or schedule.rng.random() < 0.5):
                fleet.start(joins := joins + 1)
            elif up:
                exits.append(fleet.terminate(schedule.choice(up)))
        produced = producer.stop()
        ends = end_offsets(bootstrap, topic)
        wait_committed(fleet, bootstrap, scenario.group, topic, ends, timeout=300)
        fleet.wait_up()
        exits += fleet.stop_all()
        logs = "".join(m.logs() for m in fleet.members)
        tails = fleet.tails(*(e.member for e in exits if e.code != 0 or e.seconds >= GRACE_MS / 1000))

    verdict = conclude(scenario, produced, bootstrap, topic)
    rebalances = scenario.ledger.count(EventKind.ASSIGNED) + scenario.ledger.count(EventKind.REVOKED)
    scenario.note(
        joins=joins,
        leaves=len(exits),
        partition_moves=rebalances,
        commits_refused=scenario.ledger.count(EventKind.COMMIT_FAILED),
        duplicate_bound=verdict.uncommitted_processings,
    )
    unclean = [e for e in exits if e.code != 0 or e.seconds >= GRACE_MS / 1000]
    assert not unclean, f"every member leaves with 0 within the grace period: {unclean}\n{tails}"
    assert "Traceback" not in logs
    assert joins + len(exits) >= duration // 5, "the group changed every few seconds"
    verdict.require_within_handoff_windows()
