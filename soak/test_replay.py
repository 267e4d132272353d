"""Scenario 13: the DLQ replayed after a fix, with a dry run first and a replay killed half-way.

A release rejects some records it should accept (``fixable``); a few records are poison for good. After the
fixed release is deployed, ``neotool-dlq replay`` sends the DLQ back: the dry run writes nothing, the replay
killed half-way and run again sends each record once more at most (what was in flight), the fixed consumer adds
the fixable records to O once each (the ledger is idempotent), the records still failing come back to the DLQ,
and the second replay's loop guard parks them instead of sending them round again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from neotool_common.cli.dlq import PAUSE_AFTER_ACKS_ENV, main
from neotool_common.testing.harness import committed_offsets, read_topic
from neotool_common.testing.kafka import KafkaEndpoint
from soak.faults import Fleet, consumer_env
from soak.invariants import read_dlq
from soak.scenario import ScenarioRun
from soak.steps import conclude, create_topics, end_offsets, wait_committed
from soak.workload import PROCESS, Planned, envelope, produce

PARTITIONS = 2
MAX_IN_FLIGHT = 5
PAUSE_AFTER = 12
# The replay killed half-way leaves a group member behind: a short session lets the next run start soon.
FAST_EXPIRY = {"KAFKA_CONFIG_SESSION_TIMEOUT_MS": "1500", "KAFKA_CONFIG_HEARTBEAT_INTERVAL_MS": "300"}


def records(count: int) -> list[Planned]:
    """Every 20th record is rejected until the fix; every 100th (offset by 13) is poison for good."""
    planned = []
    for seq in range(count):
        key = f"replay-{seq:06}"
        if seq % 100 == 13:
            planned.append(Planned(key, envelope(key, {"seq": seq, "poison": True}), "poison", seq % PARTITIONS))
        elif seq % 20 == 7:
            # Valid for the release that ends the scenario; the first release dead-letters it.
            planned.append(Planned(key, envelope(key, {"seq": seq, "fixable": True}), PROCESS, seq % PARTITIONS))
        else:
            planned.append(Planned(key, envelope(key, {"seq": seq}), PROCESS, seq % PARTITIONS))
    return planned


def replay(bootstrap: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``neotool-dlq replay`` in-process; its exit code and output."""
    capsys.readouterr()
    code = main(["replay", *argv, "--brokers", bootstrap])
    return code, capsys.readouterr().out


def killed_replay(bootstrap: str, dlq: str) -> int:
    """A replay in a subprocess, SIGKILLed once it has had ``PAUSE_AFTER`` copies acknowledged."""
    command = [sys.executable, "-m", "neotool_common.cli.dlq", "replay", dlq, "--brokers", bootstrap]
    command += ["--max-in-flight", str(MAX_IN_FLIGHT)]
    env = {**os.environ, **FAST_EXPIRY, PAUSE_AFTER_ACKS_ENV: str(PAUSE_AFTER)}
    with subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as process:
        try:
            assert process.stderr is not None
            for line in process.stderr:
                if line.startswith("test hook: paused after"):
                    break
            else:
                raise AssertionError(f"the replay ended (exit {process.wait(30)}) before pausing")
            process.send_signal(signal.SIGKILL)
            return process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(30)


@pytest.mark.scenario(13, "DLQ replay after a fix")
@pytest.mark.timeout(900)
def test_replaying_the_dlq_after_a_fix_adds_each_record_to_o_once_and_parks_repeat_failures(
    kafka: KafkaEndpoint, scenario: ScenarioRun, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in FAST_EXPIRY.items():
        monkeypatch.setenv(name, value)
    bootstrap = kafka.bootstrap_servers
    topic = create_topics(kafka, scenario, PARTITIONS)
    dlq, parked = topic + ".dlq", topic + ".dlq.parked"
    produced = produce(bootstrap, topic, records(1_000))
    fixable = {k for k, a in produced.acked.items() if b'"fixable":true' in (a.planned.value or b"")}
    forever = produced.keys(valid=False)
    env = consumer_env(bootstrap, topic, scenario.group, scenario.ledger.path)
    replay_group = f"neotool-dlq-replay.{dlq}"

    with Fleet(env, scenario.workdir, scenario.ledger) as fleet:
        broken = fleet.start()
        wait_committed(fleet, bootstrap, scenario.group, topic, end_offsets(bootstrap, topic), timeout=180)
        assert fleet.terminate(broken).code == 0
        o_before = set(scenario.ledger.deliveries())
        first_dlq = read_dlq(bootstrap, topic)

        source_ends, dlq_ends = end_offsets(bootstrap, topic), end_offsets(bootstrap, dlq)
        dry_code, dry_out = replay(bootstrap, capsys, dlq, "--dry-run")
        wrote_nothing = (
            end_offsets(bootstrap, topic) == source_ends
            and end_offsets(bootstrap, dlq) == dlq_ends
            and parked not in kafka.admin.list_topics(timeout=10).topics
            and all(o < 0 for o in committed_offsets(bootstrap, replay_group, dlq, PARTITIONS).values())
        )

        killed = killed_replay(bootstrap, dlq)
        saved = committed_offsets(bootstrap, replay_group, dlq, PARTITIONS)
        resumed_code, resumed_out = replay(bootstrap, capsys, dlq)
        copies = Counter(r.key.decode() for r in read_topic(bootstrap, topic) if r.key is not None)

        fixed = fleet.start(SOAK_HANDLER="fixed")
        wait_committed(fleet, bootstrap, scenario.group, topic, end_offsets(bootstrap, topic), timeout=180)
        second_code, second_out = replay(bootstrap, capsys, dlq, "--max-replays", "1")
        third_code, third_out = replay(bootstrap, capsys, dlq)
        wait_committed(fleet, bootstrap, scenario.group, topic, end_offsets(bootstrap, topic), timeout=60)
        assert fleet.terminate(fixed).code == 0

    deliveries = scenario.ledger.deliveries()
    parked_records = read_topic(bootstrap, parked)
    sent_twice = {k for k, n in copies.items() if n > 2}  # the original, and more than one replayed copy
    verdict = conclude(scenario, produced, bootstrap, topic, allowed_valid_in_dlq=len(fixable))
    scenario.note(
        fixable=len(fixable),
        poison=len(forever),
        replay_saved_at_kill=sum(max(0, o) for o in saved.values()),
        sent_twice=len(sent_twice),
        parked=len(parked_records),
    )
    assert {r.key.decode() for r in first_dlq if r.key} == fixable | forever, "the first release dead-lettered them"
    assert dry_code == 0, dry_out
    assert f"Dry run: {len(first_dlq)} would be replayed" in dry_out
    assert wrote_nothing, "the dry run produced, committed and created nothing"
    assert killed == -signal.SIGKILL
    assert resumed_code == 0, resumed_out
    assert set(deliveries) - o_before == fixable, "O gained exactly the fixed records"
    assert all(deliveries[k] == copies[k] - 1 for k in fixable), "each replayed copy processed once"
    assert len(sent_twice) <= MAX_IN_FLIGHT, "only the copies in flight at the kill were sent again"
    assert second_code == 1, second_out
    # A poison record whose copy the killed replay sent twice failed twice: both of its new DLQ records are parked.
    parked_keys = Counter(r.key.decode() for r in parked_records if r.key)
    assert parked_keys == Counter({k: 2 if k in sent_twice else 1 for k in forever}), "the repeat failures, parked"
    assert f"Parked {sum(parked_keys.values())} record(s) in {parked} (loop guard):" in second_out
    assert {r.header("dlq.replay.count") for r in parked_records} == {"1"}
    assert third_code == 0, third_out
    assert "Replayed 0 record(s)" in third_out, "a replay sends nothing twice"
    verdict.require(max_duplicates=len(sent_twice), max_dlq_copies=len(forever) + len(sent_twice & forever))
