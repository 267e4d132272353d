"""Retry tiers on the real broker: one shared run of two groups on one topic, judged by several tests.

Group A (key order on) and group B (tiers of its own, key order off) read one source topic with two tiers of
300 ms and 600 ms after a single in-place attempt. Records fail in group A only, as their payload says:
``{"fail": n}`` fails the first n attempts. Every attempt is recorded with the wall-clock time it started and
the ``retry.due_at`` of the copy it read, so that "never before its due time" is a comparison of two stamps,
not a timing assertion.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from neotool_common.deadletter import retry_headers as rh
from neotool_common.policies.retry_topics import retry_topics
from neotool_common.records.message import Message
from neotool_common.testing.harness import ReadRecord, read_topic, running, wait_until
from neotool_common.testing.kafka import KafkaEndpoint

from .runner_support import RecordingConsumer, envelope, every_group_protocol, produce, settings_for

pytestmark = pytest.mark.kafka

DELAYS = (300, 600)


@dataclass(frozen=True)
class Attempt:
    record_id: str
    key: bytes | None
    topic: str
    started_ms: int
    due_ms: int | None
    ok: bool


class TierConsumer(RecordingConsumer):
    """Fails ``{"fail": n}`` records n times, in the groups listed in ``{"in": [...]}`` only."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log: list[Attempt] = []
        self.batches: list[list[str]] = []

    def ctx_partitions(self) -> int:
        return len(self._ctx.partitions)

    def process(self, message: Message) -> None:
        started = int(time.time() * 1000)
        due = message.header(rh.RETRY_DUE_AT)
        ok = True
        try:
            if self.settings.group_id in message.payload["in"]:
                super().process(message)
            else:
                with self.lock:
                    self.processed.append(message)
        except Exception:
            ok = False
            raise
        finally:
            with self.lock:
                self.log.append(
                    Attempt(message.record_id, message.key, message.topic, started, int(due) if due else None, ok)
                )


class BatchTierConsumer(TierConsumer):
    """The same, through ``process_batch()``: one failing record fails its whole batch."""

    def process_batch(self, messages: list[Message]) -> None:
        with self.lock:
            self.batches.append([m.record_id for m in messages])
        if len(messages) > 1 and any(m.payload.get("fail") for m in messages):
            raise ConnectionError("a record of the batch failed")  # the runner splits it: one by one
        for m in messages:
            self.process(m)


@dataclass
class Run:
    topic: str
    group_a: str
    group_b: str
    c_group: str
    a: TierConsumer
    b: TierConsumer
    c: BatchTierConsumer
    dlq: list[ReadRecord]
    bootstrap: str


RECORDS: list[tuple[bytes, str, dict[str, Any]]] = [
    (b"k-slow", "slow-1", {"fail": 2}),  # fails in place and in tier 1, processed from tier 2
    (b"k-dead", "dead-1", {"fail": 99}),  # fails everywhere: the DLQ, with its history
    (b"k-slow", "slow-2", {}),  # key order: follows slow-1 instead of overtaking it
    (b"k-slow", "slow-3", {}),
    *[(f"k-{n}".encode(), f"ok-{n}", {}) for n in range(6)],  # other keys flow meanwhile
]


@pytest.fixture(scope="module")
def run(kafka: KafkaEndpoint) -> Run:
    suffix = uuid.uuid4().hex[:8]
    topic = kafka.create_topic(f"t.retry-topics.{suffix}", 1)
    kafka.create_topic(topic + ".dlq", 1)
    group_a, group_b, group_c = f"a-{suffix}", f"b-{suffix}", f"c-{suffix}"
    for group in (group_a, group_b, group_c):
        for tier_topic in retry_topics(topic, group, DELAYS):
            kafka.create_topic(tier_topic, 2)
    tiers = ",".join(str(d) for d in DELAYS)
    env = {"RETRY_MAX_ATTEMPTS": "1", "RETRY_TOPIC_DELAYS_MS": tiers}
    a = TierConsumer(settings_for(kafka.bootstrap_servers, topic, group_a, RETRY_TOPIC_KEY_ORDER="true", **env))
    b = TierConsumer(settings_for(kafka.bootstrap_servers, topic, group_b, **env))
    c = BatchTierConsumer(settings_for(kafka.bootstrap_servers, topic, group_c, BATCH_MAX_WAIT_MS="200", **env))
    values = [(key, envelope(rid, {**payload, "in": [group_a, group_c]})) for key, rid, payload in RECORDS]
    with running(a), running(b), running(c):
        produce(kafka.bootstrap_servers, topic, values)
        wait_until(lambda: len(b.processed) == len(RECORDS), what="group B processed every record")
        wait_until(lambda: len(a.processed) == len(RECORDS) - 1, what="group A processed all but dead-1")
        wait_until(lambda: len(c.processed) == len(RECORDS) - 1, what="group C processed all but dead-1")
        dlq = read_topic(kafka.bootstrap_servers, topic + ".dlq", expect=2)
    return Run(topic, group_a, group_b, group_c, a, b, c, dlq, kafka.bootstrap_servers)


def _attempts(consumer: TierConsumer, record_id: str) -> list[Attempt]:
    return [attempt for attempt in consumer.log if attempt.record_id == record_id]


def test_an_outage_longer_than_in_place_retries_passes_through_the_tiers_while_the_source_flows(run: Run) -> None:
    slow = _attempts(run.a, "slow-1")
    tier_a = retry_topics(run.topic, run.group_a, DELAYS)
    assert [(a.topic, a.ok) for a in slow] == [(run.topic, False), (tier_a[0], False), (tier_a[1], True)]
    processed = [m.record_id for m in run.a.processed]
    assert processed.index("ok-5") < processed.index("slow-1")  # the source partition was never held for it
    dead = [(r.header("dlq.consumer.group"), r.header("dlq.original.offset")) for r in run.dlq]
    assert sorted(dead) == [(run.group_a, "1"), (run.c_group, "1")]  # dead-1 only: slow-1 is not in the DLQ


def test_no_record_is_tried_again_before_its_due_time(run: Run) -> None:
    retried = [a for a in run.a.log if a.topic != run.topic]
    assert len(retried) == 2 + 2 + 2  # slow-1 and dead-1 in both tiers; slow-2, slow-3 followed into tier 2
    assert all(a.due_ms is not None and a.started_ms >= a.due_ms for a in retried)


def test_a_record_failing_every_tier_is_dead_lettered_with_its_whole_history(run: Run) -> None:
    (record,) = [r for r in run.dlq if r.header("dlq.consumer.group") == run.group_a]
    assert (record.header("dlq.original.topic"), record.header("dlq.reason")) == (run.topic, "retries_exhausted")
    assert (record.header("dlq.consumer.group"), record.header("dlq.attempts")) == (run.group_a, "3")
    history = json.loads(record.headers[rh.RETRY_HISTORY] or b"[]")
    assert [(e["tier"], e["attempts"], e["type"]) for e in history] == [
        (t, 1, "builtins.ConnectionError") for t in range(3)
    ]
    assert record.header(rh.RETRY_ROOT_EXCEPTION_TYPE) == "builtins.ConnectionError"
    assert [name for name in record.headers if name == rh.RETRY_HISTORY] == [rh.RETRY_HISTORY]


def test_key_order_holds_with_a_tier_in_between(run: Run) -> None:
    processed = [m.record_id for m in run.a.processed if m.key == b"k-slow"]
    assert processed == ["slow-1", "slow-2", "slow-3"]
    followers = [a.topic for a in run.a.log if a.record_id in ("slow-2", "slow-3")]
    assert followers == [retry_topics(run.topic, run.group_a, DELAYS)[1]] * 2  # behind slow-1, unprocessed till then


def test_retries_of_one_group_never_reach_the_other(run: Run) -> None:
    assert sorted(m.record_id for m in run.b.processed) == sorted(rid for _, rid, _ in RECORDS)
    assert {a.topic for a in run.b.log} == {run.topic}
    for tier_topic in retry_topics(run.topic, run.group_b, DELAYS):
        assert read_topic(run.bootstrap, tier_topic) == []


def test_process_batch_moves_only_the_failing_records_of_a_batch_to_a_tier(run: Run) -> None:
    first_tier = retry_topics(run.topic, run.c_group, DELAYS)[0]
    moved = {json.loads(r.value or b"{}")["record_id"] for r in read_topic(run.bootstrap, first_tier)}
    assert moved == {"slow-1", "dead-1"}
    assert sorted(m.record_id for m in run.c.processed) == sorted(rid for _, rid, _ in RECORDS if rid != "dead-1")
    assert any(len(batch) > 1 for batch in run.c.batches)  # batches were formed, and failed, and were split


@every_group_protocol
def test_a_record_waiting_in_a_tier_through_a_rebalance_is_handled_once_due_and_never_dead_lettered(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], protocol: dict[str, str]
) -> None:
    topic = make_topic(2)
    make_topic(name=topic + ".dlq")
    group = f"rebalance-{uuid.uuid4().hex[:8]}"
    tier = make_topic(2, name=retry_topics(topic, group, (3000,))[0])
    env = {**protocol, "RETRY_MAX_ATTEMPTS": "1", "RETRY_TOPIC_DELAYS_MS": "3000"}
    first = TierConsumer(settings_for(kafka.bootstrap_servers, topic, group, **env))
    second = TierConsumer(settings_for(kafka.bootstrap_servers, topic, group, **env))
    second.attempts, second.lock = first.attempts, first.lock  # r-0 fails once in the group, whoever reads it
    records = [(f"k-{n}".encode(), envelope(f"r-{n}", {"fail": 1 if n == 0 else 0, "in": [group]})) for n in range(4)]
    with running(first):
        for partition in (0, 1):
            produce(kafka.bootstrap_servers, topic, records[partition::2], partition=partition)
        wait_until(lambda: read_topic(kafka.bootstrap_servers, tier, timeout=1), what="r-0 written to its tier")
        with running(second):  # a member joins while r-0 waits: its partition may move, its hold must not be lost
            wait_until(lambda: second.ctx_partitions() and first.ctx_partitions(), what="both members assigned")
            both = [first, second]
            wait_until(lambda: any(a.ok for c in both for a in _attempts(c, "r-0")), what="r-0 processed")
    retried = [a for c in (first, second) for a in _attempts(c, "r-0") if a.topic == tier]
    assert retried
    assert all(a.due_ms is not None and a.started_ms >= a.due_ms for a in retried)
    assert read_topic(kafka.bootstrap_servers, topic + ".dlq") == []
