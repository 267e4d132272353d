"""Scenarios 2 and 9: consumers stopped politely (SIGTERM rolling restarts) and frozen (SIGSTOP, SIGCONT).

2. Three consumer processes in one group are restarted one after the other, ten times, while records flow:
   each exits 0 within its grace period, and not one record is lost or processed twice.
9. A consumer freezes inside ``process()`` for longer than ``session.timeout.ms``; the group moves on without it.
   When it wakes, the commits it still tries for partitions it no longer owns are rejected, and nothing is lost.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from neotool_common.testing.harness import committed_offsets
from neotool_common.testing.kafka import KafkaEndpoint
from soak.faults import SESSION_TIMEOUT_MS, FaultSchedule, Fleet, consumer_env
from soak.invariants import kill_window
from soak.ledger import EventKind
from soak.scenario import Scale, ScenarioRun
from soak.steps import conclude, create_topics, wait_committed
from soak.workload import planned_records, produce

GRACE_MS = 10_000


@pytest.mark.scenario(2, "SIGTERM rolling restarts")
@pytest.mark.timeout(900)
def test_rolling_restarts_of_three_members_lose_nothing_and_duplicate_nothing(
    kafka: KafkaEndpoint, scenario: ScenarioRun, scale: Scale, schedule: FaultSchedule
) -> None:
    bootstrap = kafka.bootstrap_servers
    partitions, restarts = 6, 10
    topic = create_topics(kafka, scenario, partitions)
    produced = produce(
        bootstrap, topic, planned_records("roll", scale.pick(6_000, 12_000), partitions, poison_every=250)
    )
    env = consumer_env(
        bootstrap, topic, scenario.group, scenario.ledger.path, SOAK_WORK_MS="10", SHUTDOWN_GRACE_MS=str(GRACE_MS)
    )
    exits = []

    with Fleet(env, scenario.workdir, scenario.ledger) as fleet:
        members = {slot: fleet.start(slot) for slot in (1, 2, 3)}
        for member in members.values():
            fleet.wait_working(member)
        for restart in range(restarts):
            slot = restart % 3 + 1
            exits.append(fleet.terminate(members[slot]))
            members[slot] = fleet.start(slot)
            fleet.wait_working(members[slot])
            schedule.delay(0.5, 2.0)  # where in the stream the next restart lands
        remaining = len(produced.acked) - scenario.ledger.processed_count() - scenario.ledger.count(EventKind.DLQ_ACKED)
        ends = {p: len(acked) for p, acked in produced.by_partition().items()}
        wait_committed(fleet, bootstrap, scenario.group, topic, ends, timeout=600)
        exits += fleet.stop_all()
        logs = "".join(m.logs() for m in fleet.members)

    verdict = conclude(scenario, produced, bootstrap, topic)
    scenario.note(
        restarts=restarts,
        slowest_exit_s=round(max(e.seconds for e in exits), 2),
        left_after_restarts=remaining,
        commit_failures=scenario.ledger.count(EventKind.COMMIT_FAILED),
    )
    assert remaining > 0, "the stream was still flowing at the last restart"
    assert [e.code for e in exits] == [0] * len(exits), "every member exits 0"
    assert all(e.seconds < GRACE_MS / 1000 for e in exits), f"exits within the grace period: {exits}"
    assert "Traceback" not in logs
    verdict.require(max_duplicates=0, max_dlq_copies=0)


def process_state(pid: int) -> str:
    """The kernel's state letter of ``pid`` (``T``: stopped)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.scenario(9, "SIGSTOP beyond the session timeout")
@pytest.mark.timeout(600)
def test_a_member_frozen_beyond_its_session_has_its_stale_commits_rejected_and_loses_nothing(
    kafka: KafkaEndpoint, scenario: ScenarioRun, scale: Scale
) -> None:
    bootstrap = kafka.bootstrap_servers
    partitions = 4
    topic = create_topics(kafka, scenario, partitions)
    produced = produce(
        bootstrap, topic, planned_records("stop", scale.pick(3_000, 6_000), partitions, poison_every=300)
    )
    env = consumer_env(bootstrap, topic, scenario.group, scenario.ledger.path, SOAK_WORK_MS="5")
    ledger = scenario.ledger

    with Fleet(env, scenario.workdir, ledger) as fleet:
        frozen = fleet.start(1, SOAK_FAULT="stop-after@300")
        other = fleet.start(2)
        fleet.watch(lambda: ledger.count(EventKind.FAULT, member=frozen.name) == 1, "the freeze")
        fleet.watch(lambda: process_state(frozen.pid) == "T", "the kernel to stop it", timeout=10)
        stopped_at = time.monotonic()
        at_freeze = committed_offsets(bootstrap, scenario.group, topic, partitions)
        window = kill_window(ledger, frozen.name, topic, at_freeze)
        fleet.watch(
            lambda: ledger.assigned_now(other.name) == set(range(partitions)),
            "the group to give every partition to the other member",
            timeout=60,
        )
        frozen_for = time.monotonic() - stopped_at
        resumed_seq = ledger.last_seq()
        fleet.fault(frozen, "SIGCONT")
        os.kill(frozen.pid, signal.SIGCONT)
        ends = {p: len(acked) for p, acked in produced.by_partition().items()}
        wait_committed(fleet, bootstrap, scenario.group, topic, ends, timeout=300)
        exits = fleet.stop_all()

    after = ledger.events(member=frozen.name, after_seq=resumed_seq)
    rejoined = next((e.seq for e in after if e.kind == EventKind.ASSIGNED), None)
    stale = [e for e in after if rejoined is None or e.seq < rejoined]
    stale_commits = [e for e in stale if e.kind == EventKind.COMMIT]
    # A result after SIGCONT may answer a commit sent before the freeze: only answers to stale requests count.
    stale_requested = {(e.partition, e.offset) for e in stale_commits}
    stale_accepted = [e for e in stale if e.kind == EventKind.COMMIT_OK and (e.partition, e.offset) in stale_requested]
    stale_processed = {e.record_id for e in stale if e.kind == EventKind.PROCESSED}
    verdict = conclude(scenario, produced, bootstrap, topic)
    scenario.note(
        frozen_s=round(frozen_for, 1),
        stale_commits=len(stale_commits),
        rejected=len([e for e in stale if e.kind == EventKind.COMMIT_FAILED]),
        window_at_freeze=window.size,
        processed_after_waking=len(stale_processed),
    )
    assert frozen_for > SESSION_TIMEOUT_MS / 1000
    assert stale_commits, "the woken member tried to commit what it had finished for its lost partitions"
    assert not stale_accepted, f"stale commits accepted: {stale_accepted}"
    assert [e.code for e in exits] == [0, 0]
    repeated = set(verdict.duplicated)
    assert repeated <= window.processed | stale_processed, "only records done since the last commit are repeated"
    verdict.require(max_duplicates=window.size + len(stale_processed), max_dlq_copies=window.dlq_sent)
