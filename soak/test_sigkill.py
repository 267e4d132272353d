"""Scenarios 3 and 4: consumers SIGKILLed at random points, and between a dead-letter write and its commit."""

from __future__ import annotations

import pytest

from neotool_common.testing.harness import committed_offsets
from neotool_common.testing.kafka import KafkaEndpoint
from soak.faults import FaultSchedule, Fleet, consumer_env
from soak.invariants import KillWindow, kill_window, repeated_outside_windows
from soak.scenario import Scale, ScenarioRun
from soak.steps import conclude, create_topics, wait_committed
from soak.workload import planned_records, produce

PARTITIONS = 3


@pytest.mark.soak_quick
@pytest.mark.scenario(3, "SIGKILL at random points")
@pytest.mark.timeout(1200)
def test_sigkill_at_random_points_loses_nothing_and_repeats_only_the_commit_window(
    kafka: KafkaEndpoint, scenario: ScenarioRun, scale: Scale, schedule: FaultSchedule
) -> None:
    kills = scale.pick(3, 20)
    bootstrap = kafka.bootstrap_servers
    topic = create_topics(kafka, scenario, PARTITIONS)
    records = planned_records("kill", scale.pick(3_000, 20_000), PARTITIONS, poison_every=150)
    produced = produce(bootstrap, topic, records)
    env = consumer_env(bootstrap, topic, scenario.group, scenario.ledger.path, COMMIT_EVERY_RECORDS="200")
    windows: list[KillWindow] = []

    with Fleet(env, scenario.workdir, scenario.ledger) as fleet:
        for _ in range(kills):
            member = fleet.start(SOAK_WORK_MS="2")
            if schedule.rng.random() < 0.25:  # anywhere in start-up, joining or the first records
                schedule.delay(0.0, 3.0)
            else:  # somewhere in the stream
                fleet.wait_working(member)
                schedule.delay(0.0, 1.5)
            fleet.kill(member)
            committed = committed_offsets(bootstrap, scenario.group, topic, PARTITIONS)
            windows.append(kill_window(scenario.ledger, member.name, topic, committed))
        fleet.start()
        ends = {p: len(rs) for p, rs in produced.by_partition().items()}
        wait_committed(fleet, bootstrap, scenario.group, topic, ends, timeout=600)
        (stopped,) = fleet.stop_all()
        assert stopped.code == 0, fleet.tails()
        starts = [m.name for m in fleet.members]

    verdict = conclude(scenario, produced, bootstrap, topic)
    later = {name: starts[i + 1 :] for i, name in enumerate(starts)}
    verdict.violations += repeated_outside_windows(scenario.ledger, windows, later)
    bound = sum(w.size for w in windows)
    scenario.note(
        kills=kills,
        seed=schedule.seed,
        windows="/".join(str(w.size) for w in windows),
        duplicate_bound=bound,
    )
    verdict.require(max_duplicates=bound, max_dlq_copies=sum(w.dlq_sent for w in windows))
