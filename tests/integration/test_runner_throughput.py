"""The throughput modes against a real broker: key order under concurrency, a poisoned key, a rebalance with
records in hand, batches with a bad record, async handlers.

Every consumer here keeps a ledger of (key, offset) as records enter and leave ``process()``: per-key order and
the absence of overlap within a key are read from it, not assumed.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from neotool_common.config.settings import RunnerSettings
from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.errors import PoisonMessageError
from neotool_common.records.message import Message
from neotool_common.testing.harness import committed_offsets, read_topic, running, wait_until
from neotool_common.testing.kafka import KafkaEndpoint

from .runner_support import RecordingConsumer, envelope, every_group_protocol, produce, settings_for
from .test_runner_process import GRACE_S, consumer_env, consumer_process

pytestmark = pytest.mark.kafka

IN_FLIGHT = 32


class Ledger:
    """Entries and exits of process(), per (partition, key): order, overlap, and how many ran at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entered: dict[tuple[int, bytes | None], list[int]] = defaultdict(list)
        self.active: set[tuple[int, bytes | None]] = set()
        self.overlaps: list[tuple[bytes | None, int]] = []
        self.running = 0
        self.most = 0
        self.finished: dict[tuple[int, int], float] = {}

    def enter(self, message: Message) -> None:
        chain = (message.partition, message.key)
        with self.lock:
            if chain in self.active:
                self.overlaps.append((message.key, message.offset))
            self.active.add(chain)
            self.entered[chain].append(message.offset)
            self.running += 1
            self.most = max(self.most, self.running)

    def leave(self, message: Message, succeeded: bool) -> None:
        with self.lock:
            self.active.discard((message.partition, message.key))
            self.running -= 1
            if succeeded:
                self.finished[(message.partition, message.offset)] = time.monotonic()

    def assert_key_order(self) -> None:
        assert self.overlaps == [], "a record started while an earlier one of its key was in process()"
        for chain, offsets in self.entered.items():
            assert offsets == sorted(offsets), f"{chain} entered out of order: {offsets}"


class LedgerConsumer(RecordingConsumer):
    """RecordingConsumer (``fail``, ``poison`` in the payload) that also waits ``work_ms`` and keeps a ledger."""

    def __init__(self, settings: RunnerSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.ledger = Ledger()

    def process(self, message: Message) -> None:
        self.ledger.enter(message)
        succeeded = False
        try:
            time.sleep(message.payload.get("work_ms", 0) / 1000)  # the I/O of a real consumer
            super().process(message)
            succeeded = True
        finally:
            self.ledger.leave(message, succeeded)


def keyed(ids: list[str], keys: int, **payload_of: dict[str, Any]) -> list[tuple[bytes | None, bytes | None]]:
    """Records whose key cycles through ``keys`` values; ``payload_of[record_id]`` adds to a payload."""
    return [
        (f"k{n % keys}".encode(), envelope(record_id, {"work_ms": 1 + n % 4, **payload_of.get(record_id, {})}))
        for n, record_id in enumerate(ids)
    ]


def committed(kafka: KafkaEndpoint, group: str, topic: str, partitions: int = 1) -> dict[int, int]:
    return committed_offsets(kafka.bootstrap_servers, group, topic, partitions)


def test_key_order_holds_under_concurrency_with_retries_and_everything_is_committed(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    ids = [f"r-{i:03}" for i in range(600)]
    flaky = {record_id: {"fail": 1} for record_id in ids[5::37]}
    produce(kafka.bootstrap_servers, topic, keyed(ids, keys=30, **flaky))
    runner = LedgerConsumer(settings_for(kafka.bootstrap_servers, topic, MAX_CONCURRENCY="16", ORDERING="key"))
    with running(runner):
        wait_until(lambda: committed(kafka, runner.settings.group_id, topic) == {0: 600}, what="all committed")
    assert Counter(m.record_id for m in runner.processed) == Counter(ids), "each record once"
    assert all(runner.attempts[record_id] == 2 for record_id in flaky)
    runner.ledger.assert_key_order()
    assert runner.ledger.most > 1, "keys ran in parallel"
    assert read_topic(kafka.bootstrap_servers, dlq_topic_for(topic)) == []


def test_a_record_failing_over_and_over_holds_back_its_own_key_and_the_commit_only(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    ids = [f"r-{i:03}" for i in range(200)]
    produce(kafka.bootstrap_servers, topic, keyed(ids, keys=10, **{"r-003": {"fail": 99}}))
    settings = settings_for(
        kafka.bootstrap_servers,
        topic,
        MAX_CONCURRENCY="8",
        ORDERING="key",
        RETRY_MAX_ATTEMPTS="4",
        RETRY_BACKOFF_INITIAL_MS="800",
        RETRY_BACKOFF_MAX_MS="800",
    )
    runner = LedgerConsumer(settings)
    group = runner.settings.group_id
    others = [record_id for n, record_id in enumerate(ids) if n % 10 != 3]
    with running(runner):
        wait_until(lambda: {m.record_id for m in runner.processed} >= set(others), what="every other key's record")
        wait_until(lambda: committed(kafka, group, topic) == {0: 3}, what="a commit up to the failing record")
        assert runner.attempts["r-003"] < 4, "the other keys finished while it was still being retried"
        assert not [m for m in runner.processed if m.key == b"k3"], "its key waited behind it"
        (dead,) = read_topic(kafka.bootstrap_servers, dlq_topic_for(topic), expect=1)
        wait_until(lambda: committed(kafka, group, topic) == {0: 200}, what="the commit past it")
    assert (dead.offset, dead.header("dlq.reason"), dead.header("dlq.attempts")) == (0, "retries_exhausted", "4")
    assert dead.header("dlq.original.offset") == "3"
    key_3 = [m.offset for m in runner.processed if m.key == b"k3"]
    assert key_3 == list(range(13, 200, 10)), "the rest of its key, in order, after it was dead-lettered"


@every_group_protocol
def test_a_rebalance_with_records_in_hand_commits_only_completed_offsets_and_loses_nothing(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], protocol: dict[str, str]
) -> None:
    partitions = 4
    topic = make_topic(partitions)
    make_topic(name=dlq_topic_for(topic))
    ids_of: dict[int, list[str]] = {}
    for partition in range(partitions):
        ids_of[partition] = [f"p{partition}-{i:03}" for i in range(200)]
        records = [(f"k{i % 7}".encode(), envelope(r, {"work_ms": 30})) for i, r in enumerate(ids_of[partition])]
        produce(kafka.bootstrap_servers, topic, records, partition=partition)
    # 800 records of 30 ms, four at a time: the stream still flows when the second member has joined.
    env = {"MAX_CONCURRENCY": "4", "ORDERING": "key", "MAX_IN_FLIGHT": "40", "COMMIT_INTERVAL_MS": "60000", **protocol}
    first = LedgerConsumer(settings_for(kafka.bootstrap_servers, topic, **env))
    group = first.settings.group_id
    second = LedgerConsumer(settings_for(kafka.bootstrap_servers, topic, group, **env))
    with ExitStack() as stack:
        stack.enter_context(running(first))
        wait_until(lambda: len(first.processed) >= 60, what="the first member well into the stream")
        stack.enter_context(running(second))
        wait_until(lambda: second.processed, what="the second member took partitions over")
        every_id = {record_id for ids in ids_of.values() for record_id in ids}
        wait_until(lambda: {m.record_id for m in first.processed + second.processed} == every_id, what="all records")
        revokes = first.registry.get_sample_value(
            "neotool_consumer_rebalances_total", {"group": group, "kind": "revoke"}
        )
    assert revokes, "the first member gave partitions up while its workers had records"
    assert committed(kafka, group, topic, partitions) == dict.fromkeys(range(4), 200), "committed on the way out"

    first_done = {(m.partition, m.offset) for m in first.processed}
    for partition in {m.partition for m in second.processed}:
        resumed_at = min(m.offset for m in second.processed if m.partition == partition)
        assert {(partition, offset) for offset in range(resumed_at)} <= first_done, (
            f"partition {partition}: the revoke committed {resumed_at}, past a record the first member had not done"
        )
    counts = Counter(m.record_id for m in first.processed + second.processed)
    repeated = [record_id for record_id, count in counts.items() if count > 1]
    assert len(repeated) <= 40, "only records that were out in the first member's workers are repeated"
    for runner in (first, second):
        runner.ledger.assert_key_order()


class BulkStore(LedgerConsumer):
    """One 'round trip' per batch; the batch is refused when one row breaks a constraint (poison)."""

    def __init__(self, settings: RunnerSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.rows: dict[str, int] = {}
        self.batch_sizes: list[int] = []
        self.refused: list[str] = []
        self.singles: list[str] = []
        self.store_lock = threading.Lock()

    def process_batch(self, messages: list[Message]) -> None:
        with self.store_lock:
            self.batch_sizes.append(len(messages))
        if any(m.payload.get("poison") for m in messages):
            self.refused += [m.record_id for m in messages]
            raise ValueError("violates check constraint routing_number_valid")  # the whole statement fails
        with self.store_lock:
            for message in messages:
                self.rows[message.record_id] = self.rows.get(message.record_id, 0) + 1

    def process(self, message: Message) -> None:
        with self.store_lock:
            self.singles.append(message.record_id)
        if message.payload.get("poison"):
            raise PoisonMessageError("routing number fails its checksum", "$.payload.routing_number")
        with self.store_lock:
            self.rows[message.record_id] = self.rows.get(message.record_id, 0) + 1


def test_a_failed_batch_falls_back_to_single_records_so_only_the_bad_one_is_dead_lettered(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    ids = [f"b-{i:03}" for i in range(300)]
    produce(kafka.bootstrap_servers, topic, [(i.encode(), envelope(i, {"poison": i == "b-142"})) for i in ids])
    settings = settings_for(
        kafka.bootstrap_servers, topic, MAX_CONCURRENCY="2", ORDERING="key", BATCH_SIZE="50", BATCH_MAX_WAIT_MS="200"
    )
    runner = BulkStore(settings)
    with running(runner):
        (dead,) = read_topic(kafka.bootstrap_servers, dlq_topic_for(topic), expect=1)
        wait_until(lambda: committed(kafka, runner.settings.group_id, topic) == {0: 300}, what="all committed")
    assert (dead.key, dead.header("dlq.reason"), dead.header("dlq.attempts")) == (b"b-142", "poison", "1")
    assert set(runner.rows) == set(ids) - {"b-142"}, "every good row stored"
    assert set(runner.rows.values()) == {1}, "once: the failed batch stored nothing, its records were stored alone"
    assert max(runner.batch_sizes) == 50, "full batches"
    assert "b-142" in runner.refused
    assert sorted(runner.singles) == sorted(runner.refused), "the refused batch's records, one by one"


class AsyncLedgerConsumer(LedgerConsumer):
    async def process(self, message: Message) -> None:  # type: ignore[override]
        self.ledger.enter(message)
        succeeded = False
        try:
            await asyncio.sleep(message.payload.get("work_ms", 0) / 1000)
            RecordingConsumer.process(self, message)
            succeeded = True
        finally:
            self.ledger.leave(message, succeeded)


def test_an_async_handler_runs_keys_concurrently_in_order_with_retries(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    ids = [f"a-{i:03}" for i in range(500)]
    flaky = {record_id: {"fail": 2} for record_id in ids[11::53]}
    produce(kafka.bootstrap_servers, topic, keyed(ids, keys=50, **flaky))
    runner = AsyncLedgerConsumer(settings_for(kafka.bootstrap_servers, topic, MAX_CONCURRENCY="50", ORDERING="key"))
    with running(runner):
        wait_until(lambda: committed(kafka, runner.settings.group_id, topic) == {0: 500}, what="all committed")
    assert Counter(m.record_id for m in runner.processed) == Counter(ids)
    assert all(runner.attempts[record_id] == 3 for record_id in flaky)
    runner.ledger.assert_key_order()
    assert runner.ledger.most > 10, "many records awaited at once"
    retries = runner.registry.get_sample_value(
        "neotool_consumer_retries_total", {"topic": topic, "group": runner.settings.group_id}
    )
    assert retries == 2 * len(flaky)


def test_sigkill_with_records_in_the_workers_loses_nothing_and_repeats_only_what_was_past_the_commit(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    ids = [f"r-{i:03}" for i in range(400)]
    produce(kafka.bootstrap_servers, topic, [(f"k{n % 20}".encode(), envelope(i)) for n, i in enumerate(ids)])
    offset_of = {record_id: offset for offset, record_id in enumerate(ids)}
    group = f"sigkill-modes-{uuid.uuid4().hex[:8]}"
    mode = {"MAX_CONCURRENCY": "8", "ORDERING": "key", "MAX_IN_FLIGHT": str(IN_FLIGHT)}

    with consumer_process(tmp_path, consumer_env(kafka, topic, group, WORK_MS="20", **mode), "first") as first:
        wait_until(lambda: len(first.handled()) >= 100, what="100 records handled")
        wait_until(lambda: committed(kafka, group, topic)[0] > 0, what="a first commit")
        first.process.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
    at_kill = committed(kafka, group, topic)[0]
    handled_first = first.handled()
    assert 0 < at_kill < len(ids), "killed mid-stream"
    assert set(ids[:at_kill]) <= set(handled_first), "the commit never passed a record that was not complete"

    with consumer_process(tmp_path, consumer_env(kafka, topic, group, **mode), "second") as second:
        wait_until(lambda: committed(kafka, group, topic)[0] == len(ids), timeout=60, what="the commit at the end")
        second.process.send_signal(signal.SIGTERM)
        assert second.wait(timeout=GRACE_S + 30) == 0, second.stderr()[-3000:]
    handled_second = second.handled()

    assert set(handled_first) | set(handled_second) == set(ids), "nothing lost"
    repeated = set(handled_first) & set(handled_second)
    assert all(offset_of[i] >= at_kill for i in repeated), "nothing below the last commit is repeated"
    # At most IN_FLIGHT records are out at once; add what completed between the last commit (every 100 ms) and
    # the kill, at ~400 records/s.
    assert len(repeated) <= IN_FLIGHT + 60
    for run in (handled_first, handled_second):
        assert len(set(run)) == len(run), "once per run"
        by_key: dict[int, list[int]] = defaultdict(list)
        for record_id in run:
            by_key[offset_of[record_id] % 20].append(offset_of[record_id])
        assert all(offsets == sorted(offsets) for offsets in by_key.values()), "each key in order"
