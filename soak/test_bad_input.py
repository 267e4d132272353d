"""Scenario 12: a corpus of bad bytes mixed with good records. Each bad record is dead-lettered exactly once
with its reason, good ones are processed once and in order, and the consumer never crashes, stalls or retries."""

from __future__ import annotations

from collections import Counter

import pytest

from neotool_common.testing.kafka import KafkaEndpoint, free_port
from soak.corpus import RAW_HEADER_NAME, bad_records, tricky_good_records
from soak.faults import Fleet, consumer_env, metric, scrape_metrics
from soak.invariants import read_dlq
from soak.rawproduce import produce_raw
from soak.scenario import Scale, ScenarioRun
from soak.steps import conclude, create_topics, wait_committed
from soak.workload import Acked, Planned, envelope, planned_records, produce

PARTITIONS = 2
LARGE = {"max.message.bytes": "2000000"}  # room for the oversized record on the topic and its DLQ


def interleave(bad: list[Planned], good: list[Planned]) -> list[Planned]:
    """Bad records spread evenly among the good ones, round-robin over the partitions."""
    step = max(1, len(good) // (len(bad) + 1))
    mixed: list[Planned] = []
    for index, record in enumerate(good):
        mixed.append(record)
        if index % step == step - 1 and len(mixed) - index - 1 < len(bad):
            mixed.append(bad[len(mixed) - index - 2])
    mixed += bad[len(mixed) - len(good) :]
    return [Planned(r.key, r.value, r.expect, i % PARTITIONS, r.headers) for i, r in enumerate(mixed)]


@pytest.mark.soak_quick
@pytest.mark.scenario(12, "bad-input corpus")
def test_each_bad_record_is_dead_lettered_once_with_its_reason_and_good_ones_flow(
    kafka: KafkaEndpoint, scenario: ScenarioRun, scale: Scale
) -> None:
    bootstrap = kafka.bootstrap_servers
    topic = create_topics(kafka, scenario, PARTITIONS, config=LARGE)
    bad = bad_records()
    good = planned_records("good", scale.pick(300, 3_000), PARTITIONS) + tricky_good_records()
    records = interleave(bad, good)
    produced = produce(bootstrap, topic, records, config={"message.max.bytes": 2_000_000})
    raw = Planned("bad-header-name-bytes", envelope("bad-header-name-bytes", {"seq": 1}), "decode", 0)
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    assert raw.value is not None
    offset = produce_raw(host, int(port), topic, 0, raw.key.encode(), raw.value, [(RAW_HEADER_NAME, b"1")])
    produced.acked[raw.key] = Acked(raw, 0, offset)
    produced.add(produce(bootstrap, topic, planned_records("after", 10, PARTITIONS)))
    metrics_port = free_port()
    env = consumer_env(bootstrap, topic, scenario.group, scenario.ledger.path, METRICS_PORT=str(metrics_port))

    with Fleet(env, scenario.workdir, scenario.ledger) as fleet:
        member = fleet.start()
        ends = {p: max(a.offset for a in acked) + 1 for p, acked in produced.by_partition().items()}
        wait_committed(fleet, bootstrap, scenario.group, topic, ends, timeout=180)
        samples = scrape_metrics(metrics_port)
        (stopped,) = fleet.stop_all()
        assert stopped.code == 0, member.tail()

    dead = read_dlq(bootstrap, topic)
    verdict = conclude(scenario, produced, bootstrap, topic)
    expected = {a.planned.key: a.planned.expect for a in produced.acked.values() if not a.planned.valid}
    copies = Counter(r.key.decode() for r in dead if r.key is not None)
    reasons = Counter(r.header("dlq.reason") for r in dead)
    scenario.note(bad_classes=len(expected), reasons=dict(reasons))
    assert copies == Counter(dict.fromkeys(expected, 1)), "each bad record in the DLQ exactly once"
    assert all(r.header("dlq.attempts") == "1" for r in dead), "never retried"
    (header_record,) = [r for r in dead if r.key == raw.key.encode()]
    assert header_record.header("dlq.path") == "$headers"
    assert metric(samples, "neotool_consumer_retries_total") == 0
    assert metric(samples, "neotool_consumer_dlq_messages_total") == len(expected)
    assert metric(samples, "neotool_consumer_messages_processed_total") == len(produced.keys(valid=True))
    assert "Traceback" not in member.logs()
    assert len(fleet.members) == 1, "one process did it all"
    verdict.require(max_duplicates=0, max_dlq_copies=0)
