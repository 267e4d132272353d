"""Scenarios 4, 5 and 6: the dead-letter path under faults.

4. SIGKILL between a dead-letter write and the commit (fault hooks in the soak consumer's DLQ producer).
5. A DLQ that cannot be written (topic missing, or the broker refusing the write): commits wait at the poison
   record, the metrics raise the alarm, and the consumer recovers by itself once the DLQ is writable.
6. A bad deploy that rejects every record: the circuit breaker stops the consumer instead of emptying the topic
   into the DLQ; the rollback then loses nothing.
"""

from __future__ import annotations

import time

import pytest

# confluent_kafka.admin re-exports these without an __all__, which mypy --strict does not count as exported.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from neotool_common.testing.harness import committed_offsets
from neotool_common.testing.kafka import KafkaEndpoint, free_port
from soak.faults import Fleet, consumer_env, metric, scrape_metrics
from soak.invariants import KillWindow, kill_window, read_dlq
from soak.ledger import EventKind, Ledger
from soak.scenario import Scale, ScenarioRun
from soak.steps import conclude, create_topics, wait_committed
from soak.workload import Planned, envelope, planned_records, produce

QUICK = pytest.mark.soak_quick
EXIT_CIRCUIT_OPEN = 3


def poisoned(records: list[Planned], index: int) -> list[Planned]:
    """``records`` with the one at ``index`` replaced by a poison record of the same key and partition."""
    victim = records[index]
    poison = Planned(victim.key, envelope(victim.key, {"seq": index, "poison": True}), "poison", victim.partition)
    return [*records[:index], poison, *records[index + 1 :]]


# -- 4 ------------------------------------------------------------------------------------------------


@pytest.mark.scenario(4, "SIGKILL between DLQ write and commit")
def test_a_kill_between_the_dead_letter_write_and_the_commit_never_commits_before_the_acknowledgement(
    kafka: KafkaEndpoint, scenario: ScenarioRun
) -> None:
    bootstrap = kafka.bootstrap_servers
    topic = create_topics(kafka, scenario, 1)
    produced = produce(bootstrap, topic, planned_records("dlqkill", 400, 1, poison_every=100))
    poison_offsets = sorted(a.offset for a in produced.acked.values() if not a.planned.valid)
    first, second, third = poison_offsets[:3]
    # Each start dies at its hook; the next one is redelivered the poison record the last one died on.
    faults = [f"dlq-sent@0:{first}", f"dlq-acked@0:{first}", f"dlq-acked@0:{second}", f"dlq-sent@0:{third}"]
    env = consumer_env(bootstrap, topic, scenario.group, scenario.ledger.path, COMMIT_EVERY_RECORDS="50")
    held: list[int] = []
    windows: list[KillWindow] = []

    with Fleet(env, scenario.workdir, scenario.ledger) as fleet:
        for fault in faults:
            member = fleet.start(SOAK_FAULT=fault, SOAK_WORK_MS="1")
            assert fleet.wait(member, timeout=120) < 0, f"{member.name} was to die at {fault}\n{member.tail()}"
            poison_offset = int(fault.rsplit(":", 1)[1])
            committed = committed_offsets(bootstrap, scenario.group, topic, 1)
            assert committed[0] <= poison_offset, f"{fault}: committed {committed[0]} past the poison record"
            held.append(committed[0])
            if fault.startswith("dlq-acked"):  # acknowledged: it is in D, whatever happens next
                copies = [
                    r for r in read_dlq(bootstrap, topic) if r.header("dlq.original.offset") == str(poison_offset)
                ]
                assert copies, f"{fault}: acknowledged, yet not in the DLQ"
            windows.append(kill_window(scenario.ledger, member.name, topic, committed))
        fleet.start()
        wait_committed(fleet, bootstrap, scenario.group, topic, {0: len(produced.acked)}, timeout=120)
        (stopped,) = fleet.stop_all()
        assert stopped.code == 0, fleet.tails()

    verdict = conclude(scenario, produced, bootstrap, topic)
    hooks = [e for e in scenario.ledger.events(EventKind.FAULT) if e.member != "scenario"]
    scenario.note(kills=len(faults), committed_at_kills=held, dlq_writes_in_windows=[w.dlq_sent for w in windows])
    assert [e.detail for e in hooks] == faults, "every hook fired where it was set"
    # A kill may repeat what its member did above the committed offsets: processings and dead-letter writes.
    verdict.require(max_duplicates=sum(w.size for w in windows), max_dlq_copies=sum(w.dlq_sent for w in windows))


# -- 5 ------------------------------------------------------------------------------------------------


def set_topic_config(endpoint: KafkaEndpoint, topic: str, name: str, value: str) -> None:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    resource.add_incremental_config(ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET))
    endpoint.admin.incremental_alter_configs([resource])[resource].result(30)


def dlq_failures(ledger: Ledger) -> int:
    return ledger.count(EventKind.DLQ_FAILED)


@pytest.mark.scenario(5, "DLQ unwritable")
@pytest.mark.parametrize(
    "cause", [pytest.param("topic missing", marks=QUICK), pytest.param("broker rejects", marks=QUICK)]
)
def test_an_unwritable_dlq_holds_commits_at_the_poison_record_raises_the_alarm_and_recovers(
    cause: str, kafka: KafkaEndpoint, scenario: ScenarioRun, scale: Scale
) -> None:
    bootstrap = kafka.bootstrap_servers
    rejects = cause == "broker rejects"
    # A DLQ copy carries the failure's headers (stack trace included): well above 512 bytes.
    topic = create_topics(kafka, scenario, 2, dlq=rejects, dlq_config={"max.message.bytes": "512"})
    count = scale.pick(400, 4_000)
    poison_index = count // 4 - count // 4 % 2  # on partition 0
    produced = produce(bootstrap, topic, poisoned(planned_records("dlqw", count, 2), poison_index))
    poison_offset = produced.acked[f"dlqw-{poison_index:06}"].offset
    ends = {p: len(acked) for p, acked in produced.by_partition().items()}
    port = free_port()
    env = consumer_env(
        bootstrap, topic, scenario.group, scenario.ledger.path, METRICS_PORT=str(port), DLQ_WRITE_TIMEOUT_MS="1000"
    )

    with Fleet(env, scenario.workdir, scenario.ledger) as fleet:
        member = fleet.start()
        valid = len(produced.keys(valid=True))
        fleet.watch(lambda: scenario.ledger.processed_count() == valid, "every good record")
        fleet.watch(lambda: dlq_failures(scenario.ledger) >= 2, "a re-sent DLQ write failing again")
        fleet.watch(
            lambda: committed_offsets(bootstrap, scenario.group, topic, 2)[1] == ends[1],
            "partition 1 committed to its end",
        )
        before = scrape_metrics(port)
        fleet.watch(lambda: dlq_failures(scenario.ledger) >= 3, "a third failed write")
        # The lag gauge is refreshed every LAG_REFRESH_S (5 s); the third failure can come just before a refresh.
        fleet.watch(
            lambda: (
                metric(scrape_metrics(port), "neotool_consumer_lag_records", partition="0") >= ends[0] - poison_offset
            ),
            "the lag gauge counting the records held behind the poison record",
            timeout=30,
        )
        during = scrape_metrics(port)
        held = committed_offsets(bootstrap, scenario.group, topic, 2)[0]
        failing_for = time.monotonic()

        if rejects:
            set_topic_config(kafka, topic + ".dlq", "max.message.bytes", "1048588")
        else:
            kafka.create_topic(topic + ".dlq", 2)
        wait_committed(fleet, bootstrap, scenario.group, topic, ends, timeout=120)
        recovered_after = time.monotonic() - failing_for
        after = scrape_metrics(port)
        (stopped,) = fleet.stop_all()
        assert stopped.code == 0, member.tail()
        assert len(fleet.members) == 1, "recovered without a restart"

    failures = metric(during, "neotool_consumer_dlq_write_failures_total")
    scenario.note(
        committed_while_failing=held,
        poison_offset=poison_offset,
        failed_writes=int(metric(after, "neotool_consumer_dlq_write_failures_total")),
        recovered_s=round(recovered_after, 1),
    )
    assert held == poison_offset, "nothing committed past the record whose dead-letter write fails"
    assert failures > metric(before, "neotool_consumer_dlq_write_failures_total") > 0, "the failure counter rises"
    assert metric(during, "neotool_consumer_dlq_pending") == 1
    assert metric(during, "neotool_consumer_lag_records", partition="0") >= ends[0] - poison_offset
    assert metric(after, "neotool_consumer_dlq_pending") == 0
    assert metric(after, "neotool_consumer_dlq_messages_total", reason="poison") == 1
    dead = read_dlq(bootstrap, topic)
    assert [r.header("dlq.original.offset") for r in dead] == [str(poison_offset)], "written once, once writable"
    conclude(scenario, produced, bootstrap, topic).require(max_duplicates=0, max_dlq_copies=0)


# -- 6 ------------------------------------------------------------------------------------------------


@pytest.mark.scenario(6, "bad deploy rejects every record")
@pytest.mark.parametrize(
    ("handler", "reason"),
    [pytest.param("reject-all", "poison", id="handler"), pytest.param("strict-schema", "validation", id="schema")],
)
def test_a_bad_deploy_trips_the_circuit_breaker_instead_of_emptying_the_topic_into_the_dlq(
    handler: str, reason: str, kafka: KafkaEndpoint, scenario: ScenarioRun, scale: Scale
) -> None:
    bootstrap = kafka.bootstrap_servers
    partitions = 3
    topic = create_topics(kafka, scenario, partitions)
    produced = produce(bootstrap, topic, planned_records("deploy", scale.pick(3_000, 10_000), partitions))
    limit = 100
    env = consumer_env(bootstrap, topic, scenario.group, scenario.ledger.path, CIRCUIT_MAX_CONSECUTIVE_DLQ=str(limit))

    with Fleet(env, scenario.workdir, scenario.ledger) as fleet:
        bad = fleet.start(SOAK_HANDLER=handler)
        started = time.monotonic()
        code = fleet.wait(bad, timeout=120)
        stopped_after = time.monotonic() - started
        dead_at_trip = read_dlq(bootstrap, topic)
        committed = committed_offsets(bootstrap, scenario.group, topic, partitions)
        rollback = fleet.start()
        ends = {p: len(acked) for p, acked in produced.by_partition().items()}
        wait_committed(fleet, bootstrap, scenario.group, topic, ends, timeout=300)
        (stopped,) = fleet.stop_all()
        assert stopped.code == 0, rollback.tail()

    scenario.note(exit_code=code, dlq_at_trip=len(dead_at_trip), stopped_s=round(stopped_after, 1))
    assert code == EXIT_CIRCUIT_OPEN, bad.tail()
    assert any(e["event"].startswith("circuit breaker open") for e in bad.log_events())
    assert 0 < len(dead_at_trip) <= limit, "the topic was not emptied into the DLQ"
    assert {r.header("dlq.reason") for r in dead_at_trip} == {reason}
    assert sum(max(0, c) for c in committed.values()) <= len(dead_at_trip), "commits cover only dead-lettered records"
    assert scenario.ledger.processed_count(bad.name) == 0
    # The records the bad deploy dead-lettered are valid ones: bounded by the breaker, and replayable.
    verdict = conclude(scenario, produced, bootstrap, topic, allowed_valid_in_dlq=limit)
    verdict.require(max_duplicates=0, max_dlq_copies=0)
