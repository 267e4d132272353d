"""Scenarios 7 and 8: a handler that fails for a while, and a handler slower than ``max.poll.interval.ms``.

7. A record fails twice with a transient error, then succeeds: it is processed once, never dead-lettered, after
   backoffs that together outlast ``max.poll.interval.ms`` - without the member being evicted, and while the
   other partitions keep flowing.
8. One ``process()`` call outlasts ``max.poll.interval.ms``: librdkafka takes the member out of its group, the
   commit the runner then sends is rejected, the record is redelivered once the member is back, and the same
   process carries on.
"""

from __future__ import annotations

import itertools

import pytest

from neotool_common.testing.kafka import KafkaEndpoint, free_port
from soak.faults import Fleet, consumer_env, metric, scrape_metrics
from soak.ledger import EventKind
from soak.scenario import ScenarioRun
from soak.steps import conclude, create_topics, wait_committed
from soak.workload import PROCESS, Planned, envelope, planned_records, produce

MAX_POLL_INTERVAL_MS = 6_000


def with_payload(records: list[Planned], index: int, **payload: object) -> list[Planned]:
    """``records`` with the one at ``index`` given extra payload fields (it stays a valid record)."""
    target = records[index]
    changed = Planned(target.key, envelope(target.key, {"seq": index, **payload}), PROCESS, target.partition)
    return [*records[:index], changed, *records[index + 1 :]]


@pytest.mark.scenario(7, "transient failure twice, then success")
@pytest.mark.timeout(600)
def test_a_record_failing_twice_is_processed_once_after_backoffs_without_eviction(
    kafka: KafkaEndpoint, scenario: ScenarioRun
) -> None:
    bootstrap = kafka.bootstrap_servers
    partitions, initial_s, max_s = 3, 3.5, 10.0
    topic = create_topics(kafka, scenario, partitions)
    records = with_payload(planned_records("flaky", 300, partitions), 60, fail_times=2)  # partition 0, offset 20
    produced = produce(bootstrap, topic, records)
    flaky = produced.acked["flaky-000060"]
    port = free_port()
    env = consumer_env(
        bootstrap,
        topic,
        scenario.group,
        scenario.ledger.path,
        METRICS_PORT=str(port),
        SOAK_WORK_MS="5",
        RETRY_BACKOFF_INITIAL_MS=str(int(initial_s * 1000)),
        RETRY_BACKOFF_MAX_MS=str(int(max_s * 1000)),
        KAFKA_CONFIG_MAX_POLL_INTERVAL_MS=str(MAX_POLL_INTERVAL_MS),
    )

    with Fleet(env, scenario.workdir, scenario.ledger) as fleet:
        member = fleet.start()
        fleet.watch(lambda: scenario.ledger.count(EventKind.ATTEMPT_FAILED) == 1, "the first failure")
        # Records for the other partitions only now: they must flow while partition 0 waits out its backoffs.
        later = [r for r in planned_records("later", 600, partitions, start=1000) if r.partition != 0]
        produced.add(produce(bootstrap, topic, later))
        ends = {p: len(acked) for p, acked in produced.by_partition().items()}
        wait_committed(fleet, bootstrap, scenario.group, topic, ends, timeout=300)
        samples = scrape_metrics(port)
        before_stop = scenario.ledger.last_seq()
        (stopped,) = fleet.stop_all()
        assert stopped.code == 0, member.tail()

    ledger = scenario.ledger
    failures = [e for e in ledger.events(EventKind.ATTEMPT_FAILED) if e.record_id == flaky.planned.key]
    (success,) = [e for e in ledger.events(EventKind.PROCESSED) if e.record_id == flaky.planned.key]
    times = [e.at for e in failures] + [success.at]
    backoffs = [round(then - before, 2) for before, then in itertools.pairwise(times)]
    during = [e for e in ledger.events(EventKind.PROCESSED) if failures[0].seq < e.seq < success.seq]
    changes = ledger.events(EventKind.ASSIGNED, EventKind.REVOKED, EventKind.LOST)
    verdict = conclude(scenario, produced, bootstrap, topic)
    scenario.note(
        backoffs_s=backoffs,
        flowing_meanwhile=len(during),
        retries=int(metric(samples, "neotool_consumer_retries_total")),
    )
    assert [e.detail for e in failures] == ["1", "2"], "failed twice"
    assert initial_s <= backoffs[0] <= 2 * initial_s + 5, "first backoff: initial plus jitter"
    assert 2 * initial_s <= backoffs[1] <= min(max_s, 3 * initial_s) + 5, "second backoff: doubled plus jitter"
    assert sum(backoffs) > MAX_POLL_INTERVAL_MS / 1000, "the backoffs together outlast max.poll.interval.ms"
    assert [e.kind for e in changes if e.seq < before_stop] == [EventKind.ASSIGNED] * partitions, "never evicted"
    assert {e.partition for e in during} == {1, 2}, "the other partitions kept flowing; partition 0 waited"
    assert {r.key for r in later} <= {e.record_id for e in during}, "all of those produced after the first failure"
    assert metric(samples, "neotool_consumer_retries_total") == 2
    assert metric(samples, "neotool_consumer_rebalances_total", kind="lost") == 0
    assert flaky.planned.key not in verdict.duplicated
    verdict.require(max_duplicates=0, max_dlq_copies=0)


@pytest.mark.scenario(8, "handler slower than max.poll.interval.ms")
@pytest.mark.timeout(600)
def test_a_handler_slower_than_max_poll_interval_is_evicted_its_commit_rejected_and_the_record_redelivered(
    kafka: KafkaEndpoint, scenario: ScenarioRun
) -> None:
    bootstrap = kafka.bootstrap_servers
    partitions = 2
    topic = create_topics(kafka, scenario, partitions)
    slow_ms = MAX_POLL_INTERVAL_MS + 2_000
    records = with_payload(planned_records("slow", 400, partitions), 100, slow_first_ms=slow_ms)  # partition 0
    produced = produce(bootstrap, topic, records)
    slow = produced.acked["slow-000100"]
    env = consumer_env(
        bootstrap,
        topic,
        scenario.group,
        scenario.ledger.path,
        SOAK_WORK_MS="5",
        KAFKA_CONFIG_MAX_POLL_INTERVAL_MS=str(MAX_POLL_INTERVAL_MS),
    )

    with Fleet(env, scenario.workdir, scenario.ledger) as fleet:
        member = fleet.start()
        ends = {p: len(acked) for p, acked in produced.by_partition().items()}
        wait_committed(fleet, bootstrap, scenario.group, topic, ends, timeout=300)
        (stopped,) = fleet.stop_all()
        assert stopped.code == 0, member.tail()
        assert len(fleet.members) == 1, "the same process recovered"

    ledger = scenario.ledger
    first, second = [e for e in ledger.events(EventKind.PROCESSED) if e.record_id == slow.planned.key]
    between = ledger.events(member=member.name, after_seq=first.seq)
    between = [e for e in between if e.seq < second.seq]
    rejected = [e for e in between if e.kind == EventKind.COMMIT_FAILED and e.partition == slow.partition]
    verdict = conclude(scenario, produced, bootstrap, topic)
    scenario.note(
        slow_s=slow_ms / 1000,
        rejected_commits=[f"{e.partition}@{e.offset}: {e.detail}" for e in rejected][:2],
        duplicates_bound=verdict.uncommitted_processings,
    )
    assert second.at - first.at >= 0, "redelivered after its first, too slow, processing"
    assert any(e.offset == slow.offset + 1 for e in rejected), "the commit past the slow record was rejected"
    assert any(e.kind == EventKind.LOST for e in between), "the member was out of its group"
    assert any(e.kind == EventKind.ASSIGNED for e in between), "and back in it, in the same process"
    accepted = [e for e in between if e.kind == EventKind.COMMIT_OK and e.partition == slow.partition]
    assert all((e.offset or 0) <= slow.offset for e in accepted), (
        "nothing past the slow record committed before its redelivery"
    )
    verdict.require(max_duplicates=verdict.uncommitted_processings, max_dlq_copies=0)
