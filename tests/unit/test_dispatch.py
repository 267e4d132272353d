"""The dispatcher with fake handlers: ordering chains, retries in the worker, halting lanes, batches, async.

Completions are collected as the poll thread would receive them; the handlers record what ran when.
"""

from __future__ import annotations

import asyncio
import gc
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from neotool_common.concurrency.chains import Chains, Completion, Lane, Outcome, Work
from neotool_common.concurrency.dispatch import AsyncDispatcher, Dispatcher, ThreadDispatcher
from neotool_common.errors import PoisonMessageError
from neotool_common.policies.retry import RetryPolicy
from neotool_common.policies.throughput import Ordering, ThroughputPolicy
from neotool_common.records.message import Message

NO_BACKOFF = RetryPolicy(max_attempts=3, initial_backoff_s=0.0, max_backoff_s=0.0)
LONG_BACKOFF = RetryPolicy(max_attempts=3, initial_backoff_s=60.0, max_backoff_s=60.0, jitter_s=0.0)


def message(offset: int, key: str | None, partition: int = 0) -> Message:
    return Message(
        record_id=f"r-{partition}-{offset}",
        batch_id="b",
        ingested_at=datetime(2024, 5, 1, tzinfo=UTC),
        payload={},
        key=None if key is None else key.encode(),
        headers=(),
        topic="t",
        partition=partition,
        offset=offset,
        timestamp_ms=None,
        raw=b"{}",
    )


class Collector:
    """The poll thread's side: every completion, and a wait for a number of final ones."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        self.seen: list[Completion] = []

    def final(self, outcome: Outcome | None = None) -> list[Work]:
        finals = [c for c in self.seen if c.outcome not in (Outcome.RETRY, Outcome.SPLIT)]
        return [w for c in finals if outcome is None or c.outcome is outcome for w in c.works]

    def wait_for(self, records: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.final()) < records:
            self.seen.append(self.queue.get(timeout=max(0.001, deadline - time.monotonic())))

    def offsets(self, outcome: Outcome) -> list[int]:
        return sorted(w.message.offset for w in self.final(outcome))


@contextmanager
def dispatching(
    kind: type[Dispatcher],
    process: Callable[[Message], Any],
    *,
    ordering: Ordering = Ordering.KEY,
    concurrency: int = 8,
    retry: RetryPolicy = NO_BACKOFF,
    process_batch: Callable[[list[Message]], Any] | None = None,
    batch_size: int = 100,
    batch_wait_s: float = 0.02,
) -> Iterator[tuple[Dispatcher, Collector]]:
    collector = Collector()
    policy = ThroughputPolicy(concurrency, ordering, batch_size, batch_wait_s)
    dispatcher = kind(policy, retry, process, process_batch, collector.queue.put)
    dispatcher.start()
    try:
        yield dispatcher, collector
    finally:
        assert dispatcher.close(10.0), "the workers stopped"


def works(lane: Lane, keys: Sequence[str | None], partition: int = 0) -> list[Work]:
    return [Work(lane, message(offset, key, partition), None, time.perf_counter()) for offset, key in enumerate(keys)]


class Ledger:
    """What ran: (key, offset) in start order, records that started while their key was running, the most at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[tuple[bytes | None, int]] = []
        self.active: set[tuple[int, bytes | None]] = set()
        self.overlaps: list[int] = []
        self.running = 0
        self.most = 0

    def enter(self, message: Message) -> None:
        chain = (message.partition, message.key)
        with self.lock:
            self.started.append((message.key, message.offset))
            if chain in self.active:
                self.overlaps.append(message.offset)
            self.active.add(chain)
            self.running += 1
            self.most = max(self.most, self.running)

    def leave(self, message: Message) -> None:
        with self.lock:
            self.active.discard((message.partition, message.key))
            self.running -= 1

    def offsets_by_key(self) -> dict[bytes | None, list[int]]:
        by_key: dict[bytes | None, list[int]] = defaultdict(list)
        for key, offset in self.started:
            by_key[key].append(offset)
        return by_key


def test_key_ordering_runs_each_key_in_offset_order_and_different_keys_at_once() -> None:
    ledger = Ledger()

    def process(message: Message) -> None:
        ledger.enter(message)
        time.sleep(0.001)  # the I/O of a handler
        ledger.leave(message)

    keys = [f"k{i % 10}" for i in range(200)]
    with dispatching(ThreadDispatcher, process, concurrency=8) as (dispatcher, collector):
        dispatcher.submit(works(Lane(None), keys))
        collector.wait_for(200)
    assert collector.offsets(Outcome.OK) == list(range(200))
    for key, offsets in ledger.offsets_by_key().items():
        assert offsets == sorted(offsets), f"{key!r} out of order"
    assert ledger.overlaps == [], "a record started while an earlier one of its key was running"
    assert ledger.most > 1, "different keys ran at the same time"
    assert ledger.most <= 8


def test_partition_ordering_runs_one_record_of_a_partition_at_a_time_and_partitions_at_once() -> None:
    ledger = Ledger()
    per_partition: dict[int, int] = defaultdict(int)
    overlapping: list[int] = []

    def process(message: Message) -> None:
        ledger.enter(message)
        with ledger.lock:
            per_partition[message.partition] += 1
            if per_partition[message.partition] > 1:
                overlapping.append(message.offset)
        time.sleep(0.001)
        with ledger.lock:
            per_partition[message.partition] -= 1
        ledger.leave(message)

    with dispatching(ThreadDispatcher, process, ordering=Ordering.PARTITION) as (dispatcher, collector):
        lanes = [Lane(None) for _ in range(3)]
        for partition, lane in enumerate(lanes):
            dispatcher.submit(works(lane, [f"k{i}" for i in range(30)], partition))
        collector.wait_for(90)
    assert overlapping == [], "two records of one partition ran at once"
    assert ledger.most > 1, "partitions ran at the same time"


def test_unordered_uses_every_worker() -> None:
    barrier = threading.Barrier(6, timeout=5)

    def process(message: Message) -> None:
        if message.offset < 6:
            barrier.wait()  # passes only when six records are inside the handler together

    with dispatching(ThreadDispatcher, process, ordering=Ordering.UNORDERED, concurrency=6) as (dispatcher, collector):
        dispatcher.submit(works(Lane(None), ["same-key"] * 20))
        collector.wait_for(20)
    assert collector.offsets(Outcome.OK) == list(range(20))


def test_a_retrying_record_holds_back_its_own_key_only() -> None:
    release_retry = threading.Event()
    order: list[int] = []
    attempts: dict[int, int] = defaultdict(int)

    def process(message: Message) -> None:
        attempts[message.offset] += 1
        if message.offset == 0 and attempts[0] == 1:
            raise ConnectionError("directory unavailable")
        if message.offset == 0:
            release_retry.wait(5)
        order.append(message.offset)

    keys = ["slow", "slow", "a", "b", "c", "slow"]
    with dispatching(ThreadDispatcher, process, concurrency=4) as (dispatcher, collector):
        dispatcher.submit(works(Lane(None), keys))
        collector.wait_for(3)  # a, b and c, while offset 0 is still in its second attempt
        assert sorted(order) == [2, 3, 4]
        release_retry.set()
        collector.wait_for(6)
    assert order[3:] == [0, 1, 5], "the slow key kept its order behind its retried record"
    (retry,) = [c for c in collector.seen if c.outcome is Outcome.RETRY]
    assert (retry.works[0].message.offset, retry.attempts, type(retry.error)) == (0, 1, ConnectionError)
    (done,) = [c for c in collector.seen if c.outcome is Outcome.OK and c.works[0].message.offset == 0]
    assert done.attempts == 2


def test_poison_is_dead_at_once_and_retries_run_out_as_retries_exhausted() -> None:
    def process(message: Message) -> None:
        if message.offset == 1:
            raise PoisonMessageError("bad routing number", "$.payload.routing_number")
        if message.offset == 2:
            raise TimeoutError("always")

    with dispatching(ThreadDispatcher, process) as (dispatcher, collector):
        dispatcher.submit(works(Lane(None), ["a", "b", "c", "d"]))
        collector.wait_for(4)
    dead = {c.works[0].message.offset: c for c in collector.seen if c.outcome is Outcome.DEAD}
    assert (dead[1].reason, dead[1].attempts) == ("poison", 1)
    assert (dead[2].reason, dead[2].attempts) == ("retries_exhausted", 3)
    assert collector.offsets(Outcome.OK) == [0, 3]
    assert len([c for c in collector.seen if c.outcome is Outcome.RETRY]) == 2


@pytest.mark.parametrize("kind", [ThreadDispatcher, AsyncDispatcher])
def test_halting_a_lane_drops_its_queue_and_cuts_its_backoffs_short_while_running_records_finish(
    kind: type[Dispatcher],
) -> None:
    inside = threading.Event()
    finish = threading.Event()

    def work(message: Message) -> None:
        if message.key == b"fail":
            raise ConnectionError("retry me in a minute")
        if message.key == b"hold":
            inside.set()
            finish.wait(5)

    async def work_async(message: Message) -> None:
        if message.key == b"hold":
            inside.set()
            await asyncio.to_thread(finish.wait, 5)
            return
        work(message)

    process = work_async if kind is AsyncDispatcher else work
    lane, other = Lane(None), Lane(None)
    with dispatching(kind, process, concurrency=2, retry=LONG_BACKOFF) as (dispatcher, collector):
        dispatcher.submit(works(lane, ["fail", "hold", "hold", "fail", "hold"]))
        assert inside.wait(5)
        while not any(c.outcome is Outcome.RETRY for c in collector.seen):
            collector.seen.append(collector.queue.get(timeout=5))
        dropped = dispatcher.halt([lane])
        dispatcher.submit(works(other, ["x"], partition=1))
        started = time.monotonic()
        collector.wait_for(2)  # the backoff cut short, and the other lane's record
        assert time.monotonic() - started < 5, "a 60 s backoff was cut short"
        finish.set()
        collector.wait_for(3)
    assert sorted(w.message.offset for w in dropped) == [2, 3, 4], "queued behind the two in hand"
    assert collector.offsets(Outcome.ABANDONED) == [0], "the record in its backoff gave up"
    ok = sorted((w.lane is lane, w.message.offset) for w in collector.final(Outcome.OK))
    assert ok == [(False, 0), (True, 1)], "the record inside the handler finished; the other lane ran"


def test_a_record_taken_from_a_halted_lane_is_abandoned_without_running() -> None:
    ran: list[int] = []
    lane = Lane(None)
    lane.halted.set()
    with dispatching(ThreadDispatcher, lambda m: ran.append(m.offset)) as (dispatcher, collector):
        dispatcher.submit(works(lane, ["a"]))
        collector.wait_for(1)
    assert ran == []
    assert collector.offsets(Outcome.ABANDONED) == [0]


def test_a_base_exception_in_a_handler_is_reported_as_fatal() -> None:
    def process(message: Message) -> None:
        raise SystemExit(4)

    with dispatching(ThreadDispatcher, process, concurrency=1) as (dispatcher, collector):
        dispatcher.submit(works(Lane(None), ["a"]))
        collector.wait_for(1)
    (fatal,) = collector.seen
    assert fatal.outcome is Outcome.FATAL
    assert isinstance(fatal.error, SystemExit)


class BatchRecorder:
    def __init__(self, bad: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.singles: list[int] = []
        self.bad = bad
        self.lock = threading.Lock()

    def process_batch(self, messages: list[Message]) -> None:
        offsets = [m.offset for m in messages]
        with self.lock:
            self.batches.append(offsets)
        if self.bad in offsets:
            raise ValueError("one row breaks the bulk upsert")

    def process(self, message: Message) -> None:
        with self.lock:
            self.singles.append(message.offset)
        if message.offset == self.bad:
            raise PoisonMessageError("row rejected")


def test_batches_fill_up_to_the_batch_size_and_keep_each_key_in_order() -> None:
    handler = BatchRecorder()
    keys = [f"k{i % 7}" for i in range(250)]
    with dispatching(
        ThreadDispatcher, handler.process, process_batch=handler.process_batch, concurrency=2, batch_size=50
    ) as (dispatcher, collector):
        dispatcher.submit(works(Lane(None), keys))
        collector.wait_for(250)
    assert handler.singles == []
    assert sorted(o for batch in handler.batches for o in batch) == list(range(250)), "each record in one batch"
    assert all(len(batch) <= 50 for batch in handler.batches)
    assert max(len(batch) for batch in handler.batches) == 50
    for batch in handler.batches:
        for key in set(keys):
            mine = [o for o in batch if keys[o] == key]
            assert mine == sorted(mine)
    ok_completions = [c for c in collector.seen if c.outcome is Outcome.OK]
    assert len(ok_completions) == len(handler.batches), "one completion per batch"


def test_a_batch_waits_at_most_its_max_wait_for_more_records() -> None:
    handler = BatchRecorder()
    with dispatching(
        ThreadDispatcher, handler.process, process_batch=handler.process_batch, batch_size=100, batch_wait_s=0.05
    ) as (dispatcher, collector):
        started = time.perf_counter()
        dispatcher.submit(works(Lane(None), ["a", "b"]))
        collector.wait_for(2)
        waited = time.perf_counter() - started
    assert handler.batches == [[0, 1]]
    assert 0.04 <= waited < 2.0


@pytest.mark.parametrize("kind", [ThreadDispatcher, AsyncDispatcher])
def test_a_failed_batch_is_run_record_by_record_so_only_the_bad_record_is_dead(kind: type[Dispatcher]) -> None:
    handler = BatchRecorder(bad=13)
    process: Callable[[Message], Any] = handler.process
    process_batch: Callable[[list[Message]], Any] = handler.process_batch
    if kind is AsyncDispatcher:

        async def process_async(message: Message) -> None:
            handler.process(message)

        async def process_batch_async(messages: list[Message]) -> None:
            handler.process_batch(messages)

        process, process_batch = process_async, process_batch_async
    with dispatching(kind, process, process_batch=process_batch, concurrency=1, batch_size=20, batch_wait_s=0.5) as (
        dispatcher,
        collector,
    ):
        dispatcher.submit(works(Lane(None), [f"k{i % 3}" for i in range(40)]))
        collector.wait_for(40)
    first = handler.batches[0]
    assert len(first) == 20
    assert 13 in first
    assert sorted(handler.singles) == sorted(first), "the records of the failed batch, one by one"
    assert collector.offsets(Outcome.DEAD) == [13]
    assert collector.offsets(Outcome.OK) == [o for o in range(40) if o != 13]
    (split,) = [c for c in collector.seen if c.outcome is Outcome.SPLIT]
    assert len(split.works) == 20
    assert isinstance(split.error, ValueError)


def test_async_handlers_run_concurrently_on_one_loop_in_key_order() -> None:
    ledger = Ledger()
    threads: set[str] = set()

    async def process(message: Message) -> None:
        ledger.enter(message)
        threads.add(threading.current_thread().name)
        await asyncio.sleep(0.001)
        ledger.leave(message)

    keys = [f"k{i % 20}" for i in range(300)]
    with dispatching(AsyncDispatcher, process, concurrency=50) as (dispatcher, collector):
        dispatcher.submit(works(Lane(None), keys[:150]))
        dispatcher.submit(works(Lane(None), keys[150:], partition=1))  # a second lane: its own chains
        collector.wait_for(300)
    assert threads == {"neotool-event-loop"}
    assert ledger.overlaps == []
    assert 1 < ledger.most <= 40, "at most one record per key and lane at a time"


def test_async_retries_wait_in_the_loop_and_then_succeed() -> None:
    attempts: dict[int, int] = defaultdict(int)

    async def process(message: Message) -> None:
        attempts[message.offset] += 1
        if attempts[message.offset] < 3:
            raise ConnectionError("again")

    retry = RetryPolicy(max_attempts=5, initial_backoff_s=0.001, max_backoff_s=0.002)
    with dispatching(AsyncDispatcher, process, retry=retry) as (dispatcher, collector):
        dispatcher.submit(works(Lane(None), ["a", "b"]))
        collector.wait_for(2)
    assert collector.offsets(Outcome.OK) == [0, 1]
    assert dict(attempts) == {0: 3, 1: 3}
    assert [c.attempts for c in collector.seen if c.outcome is Outcome.OK] == [3, 3]


def test_quick_records_are_taken_many_at_a_time_and_a_retry_gives_the_rest_of_its_unit_back() -> None:
    ledger = Ledger()
    failed: list[int] = []
    release = threading.Event()

    def process(message: Message) -> None:
        ledger.enter(message)
        if message.offset == 100 and not failed:
            failed.append(100)
            ledger.leave(message)
            raise ConnectionError("once")
        if message.offset == 100:
            release.wait(5)  # the retry: holds its key until the other keys are done
        ledger.leave(message)

    retry = RetryPolicy(max_attempts=3, initial_backoff_s=0.001, max_backoff_s=0.001)
    keys = [f"k{i % 50}" for i in range(1000)]
    with dispatching(ThreadDispatcher, process, concurrency=4, retry=retry) as (dispatcher, collector):
        for _ in range(100):
            dispatcher.note(0.000001)  # as measured on the poll thread: records take a microsecond
        assert dispatcher.quick
        dispatcher.submit(works(Lane(None), keys))
        collector.wait_for(1000 - 20)  # every record but offset 100 and the 19 of its key behind it
        assert collector.offsets(Outcome.OK) == [o for o in range(1000) if keys[o] != "k0" or o < 100]
        release.set()
        collector.wait_for(1000)
    oks = [c for c in collector.seen if c.outcome is Outcome.OK]
    assert len(oks) < 1000 / 8, "quick records come back many to a completion"
    for key, offsets in ledger.offsets_by_key().items():
        assert offsets == sorted(offsets), f"{key!r} out of order"
    assert ledger.offsets_by_key()[b"k0"].count(100) == 2


def test_dropping_a_lane_whose_chain_is_claimed_keeps_the_claim_and_drops_what_waits_behind() -> None:
    chains = Chains(Ordering.PARTITION)
    lane = Lane(None)
    for work in works(lane, ["a", "b", "c"]):
        chains.put(work)
    taken: list[Work] = []
    claimed: list[Hashable] = []
    chains.take(2, taken, claimed)
    assert [w.message.offset for w in taken] == [0, 1]
    assert [w.message.offset for w in chains.drop({lane})] == [2]
    assert chains.queued == 0
    assert not chains.idle(lane, None), "still claimed by the unit in hand"
    chains.take(1, taken, claimed)  # nothing is ready
    chains.put_back(taken[1:], alone=False)  # e.g. its first record will be retried
    assert [w.message.offset for w in chains.drop({lane})] == [1]
    chains.release(claimed)
    assert chains.idle(lane, None)
    assert not chains.ready


@pytest.mark.parametrize("kind", [ThreadDispatcher, AsyncDispatcher])
def test_closing_a_dispatcher_that_never_started_returns_at_once_and_leaves_nothing_open(
    kind: type[Dispatcher],
) -> None:
    """What the runner's shutdown does when setup() failed before the workers started."""
    dispatcher = kind(ThroughputPolicy(4), NO_BACKOFF, lambda message: None, None, lambda completion: None)
    assert dispatcher.halt([Lane(None)]) == []
    assert dispatcher.close(5.0)
    gc.collect()  # an event loop made and never closed would warn here, and warnings are errors
