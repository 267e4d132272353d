"""Batches against a real broker: published with a manifest, reconciled per group from durable facts only.

One module-scoped topic (3 partitions) and its DLQ and manifest topics; each test publishes its own batch.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest

from neotool_common.batches import BatchState, BatchSummary
from neotool_common.batches.cluster import BatchCluster
from neotool_common.batches.settings import BatchSettings
from neotool_common.batches.status import summaries
from neotool_common.cli import batch as batch_cli
from neotool_common.cli import dlq as dlq_cli
from neotool_common.config.connection import KafkaConnection
from neotool_common.consumer.batch_watch import BatchWatch
from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.policies.retry_topics import retry_topics
from neotool_common.producing.producer import EnvelopeProducer
from neotool_common.records.message import Message
from neotool_common.testing.harness import read_topic, running, wait_until
from neotool_common.testing.kafka import KafkaEndpoint

from .runner_support import RecordingConsumer, settings_for
from .test_runner_process import consumer_env, consumer_process

HOUR_MS = 3_600_000


@dataclass
class World:
    kafka: KafkaEndpoint
    topic: str

    @cached_property
    def cluster(self) -> BatchCluster:  # one admin client for the module, let go of by the fixture
        return BatchCluster(KafkaConnection.from_env({"KAFKA_BROKERS": self.kafka.bootstrap_servers}))

    def producer(self) -> EnvelopeProducer:
        return EnvelopeProducer(KafkaConnection.from_env({"KAFKA_BROKERS": self.kafka.bootstrap_servers}))

    def summary(self, batch_id: str, group: str, overdue_ms: int = HOUR_MS) -> BatchSummary | None:
        now_ms = int(time.time() * 1000)
        found = summaries(self.cluster, self.topic, group, now_ms=now_ms, overdue_ms=overdue_ms, batch_id=batch_id)
        return found[0] if found else None

    def wait_for_state(self, batch_id: str, group: str, state: BatchState) -> BatchSummary:
        seen: list[BatchSummary | None] = [None]

        def reached() -> bool:
            seen[0] = self.summary(batch_id, group)
            return seen[0] is not None and seen[0].state is state

        wait_until(reached, timeout=60, interval=0.3, what=f"batch {batch_id} {state} for {group}")
        assert seen[0] is not None
        return seen[0]

    def settings(self, group: str, **env: str) -> Any:
        return settings_for(self.kafka.bootstrap_servers, self.topic, group, **env)


@pytest.fixture(scope="module")
def world(kafka: KafkaEndpoint) -> Iterator[World]:
    topic = f"t.batches.{uuid.uuid4().hex[:8]}"
    kafka.create_topic(topic, 3)
    kafka.create_topic(dlq_topic_for(topic), 3)
    kafka.create_topic(topic + ".batches", 1, config={"cleanup.policy": "compact"})
    kafka.create_topic(topic + ".batches.done", 1, config={"cleanup.policy": "compact"})
    found = World(kafka, topic)
    yield found
    found.cluster.close()


def publish_mixed(world: World, good: int) -> str:
    """``good`` records, one poison, one that breaks the envelope schema, one that is not JSON."""
    with world.producer() as producer, producer.batch(world.topic) as batch:
        for n in range(good):
            batch.publish({"n": n}, record_id=f"good-{n}")
        batch.publish({"poison": True}, record_id="poison")
        batch.publish_raw(json.dumps({"batch_id": batch.batch_id, "payload": {}}).encode(), key=b"invalid")
        batch.publish_raw(b"\xff\xfe not json", key=b"undecodable")
    return batch.batch_id


@pytest.fixture(scope="module")
def mixed_batch(world: World) -> str:
    return publish_mixed(world, good=12)


def test_a_manifest_published_before_any_consumer_ran_is_open_with_everything_pending(
    world: World, mixed_batch: str
) -> None:
    summary = world.summary(mixed_batch, f"nobody-{uuid.uuid4().hex[:6]}")
    assert summary is not None
    assert (summary.state, summary.expected, summary.pending, summary.processed) == (BatchState.OPEN, 15, 15, 0)
    assert sum(p.records for p in summary.partitions) == 15
    assert len(summary.partitions) == 3, "keys spread the batch over the 3 partitions"


def test_two_members_settle_a_batch_with_rejects_by_reason_and_the_cli_says_so(
    world: World, mixed_batch: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    group = f"two-{uuid.uuid4().hex[:6]}"
    with ExitStack() as stack:
        for _ in range(2):
            stack.enter_context(running(RecordingConsumer(world.settings(group))))
        summary = world.wait_for_state(mixed_batch, group, BatchState.COMPLETE_WITH_REJECTS)
    assert (summary.expected, summary.processed, summary.rejected, summary.pending) == (15, 12, 3, 0)
    assert summary.rejected_by_reason == {"poison": 1, "validation": 1, "decode": 1}
    assert summary.duplicates == 0
    monkeypatch.setenv("KAFKA_BROKERS", world.kafka.bootstrap_servers)
    code = batch_cli.main(["status", mixed_batch, "--topic", world.topic, "--group", group, "--json"])
    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1
    assert (document["state"], document["records_processed"], document["rejected"]) == ("complete_with_rejects", 12, 3)
    assert document["dlq_command"] == f"neotool-dlq list {world.topic}.dlq --batch-id {mixed_batch}"
    assert batch_cli.main(["list", "--topic", world.topic, "--group", group, "--json"]) == 0
    listed = {row["batch_id"]: row["state"] for row in json.loads(capsys.readouterr().out.strip().splitlines()[-1])}
    assert listed[mixed_batch] == "complete_with_rejects"
    assert dlq_cli.main(["list", dlq_topic_for(world.topic), "--batch-id", mixed_batch, "--json"]) == 0
    output = capsys.readouterr().out
    rows = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    mine = {row["reason"] for row in rows if row["original_topic"] == world.topic}
    assert mine == {"poison", "validation", "decode"}, output


def test_another_group_reconciles_the_same_batch_independently(world: World, mixed_batch: str) -> None:
    group = f"other-{uuid.uuid4().hex[:6]}"
    assert world.summary(mixed_batch, group).state is BatchState.OPEN  # type: ignore[union-attr]
    with running(RecordingConsumer(world.settings(group))):
        summary = world.wait_for_state(mixed_batch, group, BatchState.COMPLETE_WITH_REJECTS)
    assert (summary.processed, summary.rejected, summary.group) == (12, 3, group)


class HoldingConsumer(RecordingConsumer):
    """Holds a record whose payload says ``hold`` until :attr:`release` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()
        self.held: list[Message] = []

    def process(self, message: Message) -> None:
        if message.payload.get("hold"):
            self.held.append(message)
            self.release.wait(30)
        super().process(message)


def test_a_record_not_yet_settled_makes_the_batch_overdue_and_names_its_partition(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    group = f"held-{uuid.uuid4().hex[:6]}"
    with world.producer() as producer, producer.batch(world.topic) as batch:
        for n in range(6):
            batch.publish({"hold": n == 3}, record_id=f"held-{n}")
    runner = HoldingConsumer(world.settings(group, MAX_CONCURRENCY="2"))  # workers: the poll loop keeps committing
    with running(runner):
        wait_until(lambda: runner.held, what="the held record reached process()")
        held = runner.held[0]

        def only_held_partition_waits() -> bool:
            summary = world.summary(batch.batch_id, group)
            if summary is None or summary.holding_back != (held.partition,):
                return False
            (progress,) = (p for p in summary.partitions if p.partition == held.partition)
            return progress.committed == held.offset

        wait_until(only_held_partition_waits, timeout=30, interval=0.3, what="all but the held partition settled")
        summary = world.summary(batch.batch_id, group, overdue_ms=1)
        assert summary is not None
        assert (summary.state, summary.holding_back) == (BatchState.OVERDUE, (held.partition,))
        assert summary.pending >= 1
        monkeypatch.setenv("KAFKA_BROKERS", world.kafka.bootstrap_servers)
        monkeypatch.setenv("BATCH_OVERDUE_MS", "1")
        status = ["status", batch.batch_id, "--topic", world.topic, "--group", group]
        assert batch_cli.main(status) == 3
        assert f"held back by partition(s) {held.partition}" in capsys.readouterr().out
        runner.release.set()
        assert batch_cli.main([*status, "--wait", "30"]) == 0, "--wait returns once the batch is complete"
        assert "state       complete" in capsys.readouterr().out


class AnnouncingConsumer(RecordingConsumer):
    """Announces batches; every member appends the summaries its hook received to one shared list."""

    announce_batches = True

    def __init__(self, *args: Any, completed: list[BatchSummary], **kwargs: Any) -> None:
        super().__init__(*args, batch_settings=BatchSettings(announce=True, watch_interval_ms=200), **kwargs)
        self.completed = completed

    def on_batch_complete(self, summary: BatchSummary) -> None:
        self.completed.append(summary)


def publish_small(world: World, label: str) -> str:
    with world.producer() as producer, producer.batch(world.topic) as batch:
        for n in range(6):
            batch.publish({"n": n, "poison": n == 5}, record_id=f"{label}-{n}")
    return batch.batch_id


def test_announcements_are_made_once_per_batch_and_group_across_rebalances(world: World) -> None:
    group = f"announce-{uuid.uuid4().hex[:6]}"
    completed: list[BatchSummary] = []

    def member() -> AnnouncingConsumer:
        return AnnouncingConsumer(world.settings(group), completed=completed)

    def announced(batch_id: str) -> bool:
        return any(s.batch_id == batch_id for s in completed)

    first_batch = publish_small(world, "a1")
    with ExitStack() as first:
        first.enter_context(running(member()))
        wait_until(lambda: announced(first_batch), timeout=60, interval=0.1, what="the first batch announced")
        with running(member()):  # a second member joins: a rebalance
            second_batch = publish_small(world, "a2")
            wait_until(lambda: announced(second_batch), timeout=60, interval=0.1, what="the second batch announced")
        third_batch = publish_small(world, "a3")  # the second member left: another rebalance
        wait_until(lambda: announced(third_batch), timeout=60, interval=0.1, what="the third batch announced")
    keys = [s.idempotency_key for s in completed]
    assert len(keys) == len(set(keys)), "the hook ran once per (batch, group)"
    records = read_topic(world.kafka.bootstrap_servers, world.topic + ".batches.done")
    written = Counter(record.key.decode() for record in records if record.key.decode().endswith("/" + group))
    assert set(written.values()) == {1}, written
    assert {f"{b}/{group}" for b in (first_batch, second_batch, third_batch)} <= set(written)
    third = json.loads(next(r.value for r in records if r.key.decode() == f"{third_batch}/{group}"))
    assert (third["state"], third["records_processed"], third["rejected_by_reason"]) == (
        "complete_with_rejects",
        5,
        {"poison": 1},
    )


def test_a_member_sigkilled_mid_batch_leaves_the_counts_exact_and_duplicates_apart(
    world: World, tmp_path: Path
) -> None:
    group = f"kill-{uuid.uuid4().hex[:6]}"
    poison = {f"k-{n:03}" for n in (5, 40, 77)}
    with world.producer() as producer, producer.batch(world.topic) as batch:
        for n in range(90):
            record_id = f"k-{n:03}"
            batch.publish({"n": n, "poison": record_id in poison}, record_id=record_id)
    env = consumer_env(world.kafka, world.topic, group, WORK_MS="20")
    with consumer_process(tmp_path, env, "doomed") as doomed, consumer_process(tmp_path, env, "survivor") as survivor:
        wait_until(lambda: len(doomed.handled()) >= 15, timeout=60, what="the doomed member handled some records")
        doomed.process.send_signal(signal.SIGKILL)
        assert doomed.wait(timeout=10) == -signal.SIGKILL
        summary = world.wait_for_state(batch.batch_id, group, BatchState.COMPLETE_WITH_REJECTS)
        survivor.process.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=30) == 0, survivor.stderr()[-3000:]
    handled = [i for i in doomed.handled() + survivor.handled() if i.startswith("k-")]
    assert set(handled) == {f"k-{n:03}" for n in range(90)} - poison
    assert (summary.expected, summary.processed, summary.rejected, summary.pending) == (90, 87, 3, 0)
    assert summary.rejected_by_reason == {"poison": 3}
    # what the runner can prove happened twice: extra DLQ copies of a record for this group, and nothing else
    assert batch.manifest is not None
    positions = {(s.partition, o) for s in batch.manifest.partitions for a, b in s.runs for o in range(a, b + 1)}
    copies = Counter(
        (int(r.header("dlq.original.partition") or -1), int(r.header("dlq.original.offset") or -1))
        for r in read_topic(world.kafka.bootstrap_servers, dlq_topic_for(world.topic))
        if r.header("dlq.consumer.group") == group
    )
    assert summary.duplicates == sum(count - 1 for position, count in copies.items() if position in positions)
    print(f"handled {len(handled)} times for 87 records; {summary.duplicates} extra DLQ copies")


class GatedConsumer(AnnouncingConsumer):
    """Fails a record whose payload says ``gate`` until :attr:`gate` is set."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()

    def process(self, message: Message) -> None:
        if message.payload.get("gate") and not self.gate.is_set():
            raise ConnectionError("enrichment service unavailable")
        super().process(message)


def test_a_record_waiting_in_a_retry_tier_keeps_its_batch_open_and_unannounced(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    group = f"tiers-{uuid.uuid4().hex[:6]}"
    delays = (3000, 6000)  # the second tier only in case the first attempt from tier 1 comes before the gate opens
    for tier_topic in retry_topics(world.topic, group, delays):
        world.kafka.create_topic(tier_topic, 1)
    refreshes = Counter[str]()
    real_refresh = BatchWatch.refresh

    def counted_refresh(watch: BatchWatch) -> list[BatchSummary]:
        announced = real_refresh(watch)
        refreshes["done"] += 1
        return announced

    monkeypatch.setattr(BatchWatch, "refresh", counted_refresh)
    monkeypatch.setenv("KAFKA_BROKERS", world.kafka.bootstrap_servers)
    with world.producer() as producer, producer.batch(world.topic) as batch:
        for n in range(4):
            batch.publish({"n": n, "gate": n == 2}, record_id=f"gated-{n}")
    completed: list[BatchSummary] = []
    env = {"RETRY_MAX_ATTEMPTS": "1", "RETRY_TOPIC_DELAYS_MS": ",".join(map(str, delays))}
    runner = GatedConsumer(world.settings(group, **env), completed=completed)

    def mine() -> list[BatchSummary]:
        return [s for s in completed if s.batch_id == batch.batch_id]

    with running(runner):

        def source_committed() -> bool:  # the gated record too: its copy in tier 1 was acknowledged
            summary = world.summary(batch.batch_id, group)
            return summary is not None and all((p.committed or 0) > p.last_offset for p in summary.partitions)

        wait_until(source_committed, timeout=30, interval=0.2, what="the batch's source offsets committed")
        seen = refreshes["done"]
        wait_until(lambda: refreshes["done"] >= seen + 2, timeout=10, interval=0.05, what="two more watch refreshes")
        status = ["status", batch.batch_id, "--topic", world.topic, "--group", group, "--json"]
        code = batch_cli.main(status)
        waiting = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        runner.gate.set()
        assert (code, waiting["state"], waiting["pending"], waiting["in_retry"]) == (3, "open", 1, 1)
        assert waiting["records_processed"] == 3
        assert mine() == [], "announced while a record still waited in a retry tier"
        wait_until(mine, timeout=30, interval=0.1, what="the batch announced once the record succeeded")
    (summary,) = mine()
    assert (summary.state, summary.processed, summary.pending, summary.in_retry) == (BatchState.COMPLETE, 4, 0, 0)
    assert world.summary(batch.batch_id, group).state is BatchState.COMPLETE  # type: ignore[union-attr]
