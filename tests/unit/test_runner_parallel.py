"""The runner's throughput modes against the in-memory consumer: offsets under out-of-order completion,
backpressure, revoke and shutdown with records in hand, errors, metrics, async and batch handlers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.errors import PoisonMessageError
from neotool_common.records.message import Message
from neotool_common.testing.fakes import FakeConsumer, FakeProducer
from neotool_common.testing.harness import running, wait_until

from .test_runner_loop import Recorder, values


class Parallel(Recorder):
    """Calls ``on_process`` first, and records the record only once it returned. Commits every 10 ms."""

    def __init__(
        self,
        partitions: dict[int, list[bytes]],
        prepare: Callable[[FakeConsumer], None] = lambda fake: None,
        **env: str,
    ) -> None:
        super().__init__(partitions, 0.0, prepare, **{"COMMIT_INTERVAL_MS": "10", **env})

    def process(self, message: Message) -> None:
        self.on_process(message)
        self.processed.append((message.partition, message.offset))


class Gate:
    """Holds chosen records inside ``process()`` until the test opens it."""

    def __init__(self, *offsets: int) -> None:
        self.offsets = set(offsets)
        self.opened = threading.Event()
        self.inside: set[int] = set()

    def __call__(self, message: Message) -> None:
        if message.offset in self.offsets:
            self.inside.add(message.offset)
            assert self.opened.wait(10), "the test never opened the gate"


def metric(runner: KafkaConsumerRunner, name: str, **labels: str) -> float:
    value = runner.registry.get_sample_value(name, {"group": "g", **labels})
    return 0.0 if value is None else value


def rebalances(runner: KafkaConsumerRunner, kind: str) -> float:
    return metric(runner, "neotool_consumer_rebalances_total", kind=kind)


def threads_that_ran_process(**env: str) -> set[str]:
    runner = Parallel({0: values(20)}, **env)
    threads: set[str] = set()
    runner.on_process = lambda message: threads.add(threading.current_thread().name)
    with running(runner):
        wait_until(lambda: runner.consumer.committed == {0: 20}, what="every record committed")
    return threads


def test_max_concurrency_1_runs_process_on_the_poll_thread_and_more_runs_it_on_workers() -> None:
    assert threads_that_ran_process(MAX_CONCURRENCY="1") == {"runner-g"}, "the poll thread of running()"
    workers = threads_that_ran_process(MAX_CONCURRENCY="4")
    assert workers, "some worker ran"
    assert all(name.startswith("neotool-worker-") for name in workers), workers
    assert Parallel({0: []})._engine.workers is None
    assert Parallel({0: []}, MAX_CONCURRENCY="2")._engine.workers is not None


def test_the_commit_stops_at_the_lowest_record_not_yet_complete() -> None:
    gate = Gate(3)
    runner = Parallel({0: values(10)}, MAX_CONCURRENCY="4", ORDERING="unordered", COMMIT_INTERVAL_MS="1")
    runner.on_process = gate
    with running(runner):
        wait_until(lambda: len(runner.processed) == 9, what="every record but offset 3 processed")
        wait_until(lambda: runner.consumer.committed == {0: 3}, what="a commit up to offset 3")
        assert runner.consumer.committed == {0: 3}, "offsets 4-9 are done, but 3 is not"
        gate.opened.set()
        wait_until(lambda: runner.consumer.committed == {0: 10}, what="the commit past offset 3")
    assert sorted(runner.processed) == [(0, offset) for offset in range(10)]


def test_the_in_flight_bound_pauses_the_partition_while_the_loop_keeps_polling() -> None:
    gate = Gate(*range(200))
    runner = Parallel({0: values(200)}, MAX_CONCURRENCY="2", ORDERING="unordered", MAX_IN_FLIGHT="20")
    runner.on_process = gate
    with running(runner):
        wait_until(lambda: runner.consumer.paused == {0}, what="the partition paused")
        polls = runner.consumer.consume_calls
        wait_until(lambda: runner.consumer.consume_calls > polls + 20, what="polls while paused")
        assert runner.consumer.positions[0] == 20, "no more than MAX_IN_FLIGHT records handed out"
        gate.opened.set()
        wait_until(lambda: runner.consumer.committed == {0: 200}, what="every record committed")
        assert runner.consumer.paused == set(), "resumed once the workers caught up"
    assert len(runner.processed) == 200


def test_a_revoke_waits_for_the_record_in_hand_commits_it_and_drops_the_records_queued_behind_it() -> None:
    runner = Parallel({0: values(30)}, MAX_CONCURRENCY="4", ORDERING="partition", COMMIT_INTERVAL_MS="100000")

    def revoke_while_in_hand(message: Message) -> None:
        if message.offset == 5 and rebalances(runner, "revoke") == 0:
            runner.consumer.rebalance(revoke=[0], assign=[0])
            wait_until(lambda: rebalances(runner, "revoke") == 1, what="the revoke under way")

    runner.on_process = revoke_while_in_hand
    with running(runner):
        wait_until(lambda: {offset for _, offset in runner.processed} == set(range(30)), what="every record")
    assert runner.consumer.committed == {0: 30}, "committed at shutdown"
    assert sorted(runner.processed) == [(0, offset) for offset in range(30)], "each record once"
    assert {0: 6} in runner.consumer.commit_calls, "the revoke committed the record it waited for"


def test_a_record_still_in_hand_when_the_revoke_wait_ends_is_redelivered_and_its_late_completion_ignored() -> None:
    runner = Parallel(
        {0: values(30)}, MAX_CONCURRENCY="4", ORDERING="partition", SHUTDOWN_GRACE_MS="200", COMMIT_INTERVAL_MS="100000"
    )

    def outlast_the_revoke(message: Message) -> None:
        if message.offset == 5 and rebalances(runner, "assign") == 1:
            runner.consumer.rebalance(revoke=[0], assign=[0])
            wait_until(lambda: rebalances(runner, "assign") == 2, what="the partition assigned again")

    runner.on_process = outlast_the_revoke
    with running(runner):
        wait_until(lambda: {offset for _, offset in runner.processed} == set(range(30)), what="every record")
    assert runner.consumer.committed == {0: 30}, "committed at shutdown"
    offsets = [offset for _, offset in runner.processed]
    assert offsets.count(5) == 2, "redelivered to the new owner (this runner, assigned again)"
    assert len(offsets) == 31, "the records queued behind it were dropped, not run"
    assert {0: 5} in runner.consumer.commit_calls, "the revoke committed nothing past the record in hand"
    assert sorted(set(offsets)) == list(range(30))
    processed = metric(runner, "neotool_consumer_messages_processed_total", topic="bank.v1")
    assert processed == 30, "the late completion of the first delivery was not counted"


def test_stop_finishes_the_records_in_hand_drops_the_queue_and_commits_exactly_the_completed_prefix() -> None:
    runner = Parallel({0: values(300)}, MAX_CONCURRENCY="3", ORDERING="unordered")

    def stop_at_50(message: Message) -> None:
        if message.offset == 50:
            runner.stop()
        if message.offset > 50:
            time.sleep(0.02)  # the work: the stop comes while three of these are in hand

    runner.on_process = stop_at_50
    with running(runner):
        wait_until(lambda: runner._engine.stop_requested, what="the stop")
    done = {offset for _, offset in runner.processed}
    first_missing = min(set(range(301)) - done)
    assert 50 < first_missing < 150, "the records in hand finished, the queue was dropped"
    assert len(done) < 150
    assert runner.consumer.committed == {0: first_missing}
    assert runner.records_processed == len(done)


def test_a_base_exception_in_a_worker_stops_the_runner_and_its_record_is_not_committed() -> None:
    runner = Parallel({0: values(10)}, MAX_CONCURRENCY="2", ORDERING="partition")

    def exit_at_4(message: Message) -> None:
        if message.offset == 4:
            raise SystemExit(9)

    runner.on_process = exit_at_4
    raised: list[BaseException] = []

    def run() -> None:
        try:
            runner.run()
        except BaseException as exc:  # noqa: BLE001 - what the test looks at
            raised.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the runner stopped by itself"
    assert [type(exc) for exc in raised] == [SystemExit]
    assert runner.processed == [(0, offset) for offset in range(4)], "nothing started after it"
    assert runner.consumer.committed == {0: 4}


class Flaky(Parallel):
    """Offset 1 is poison; offset 2 fails twice, then succeeds."""

    failures = 0

    def process(self, message: Message) -> None:
        if message.offset == 1:
            raise PoisonMessageError("bad routing number", "$.payload.routing_number")
        if message.offset == 2 and self.failures < 2:
            self.failures += 1
            raise ConnectionError("directory unavailable")
        super().process(message)


def test_retries_and_dead_letters_keep_the_sequential_runners_metrics_and_dlq_writes() -> None:
    producers: list[FakeProducer] = []

    def producer(config: dict[str, Any]) -> FakeProducer:
        producers.append(FakeProducer(config))
        return producers[-1]

    runner = Flaky({0: values(6)}, MAX_CONCURRENCY="4", ORDERING="key", RETRY_BACKOFF_INITIAL_MS="1")
    runner._engine._producer_factory = producer
    with running(runner):
        wait_until(lambda: runner.consumer.committed == {0: 6}, what="every record complete")
    (dlq,) = producers
    ((topic, value, headers),) = dlq.produced
    assert (topic, value) == ("bank.v1.dlq", values(6)[1])
    assert (headers["dlq.reason"], headers["dlq.attempts"], headers["dlq.original.offset"]) == (b"poison", b"1", b"1")
    assert metric(runner, "neotool_consumer_retries_total", topic="bank.v1") == 2
    assert metric(runner, "neotool_consumer_dlq_messages_total", topic="bank.v1", reason="poison") == 1
    assert metric(runner, "neotool_consumer_messages_processed_total", topic="bank.v1") == 5
    assert metric(runner, "neotool_consumer_processing_seconds_count", topic="bank.v1") == 8, (
        "5 ok, 1 poison, 2 retries"
    )
    assert (runner.records_processed, runner.records_dead_lettered) == (5, 1)


class AsyncParallel(Recorder):
    async def process(self, message: Message) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.polls_seen.append(threading.get_ident())
        self.processed.append((message.partition, message.offset))


def test_an_async_process_runs_on_the_event_loop_even_with_max_concurrency_1() -> None:
    runner = AsyncParallel({0: values(50), 1: values(50)})
    with running(runner):
        wait_until(lambda: runner.consumer.committed == {0: 50, 1: 50}, what="every record committed")
    assert sorted(runner.processed) == sorted((p, o) for p in (0, 1) for o in range(50))
    assert len(set(runner.polls_seen)) == 1, "one event loop thread"


class BatchOnly(Recorder):
    """Only process_batch(); rows with offset 7 break it."""

    def __init__(self, partitions: dict[int, list[bytes]], **env: str) -> None:
        super().__init__(partitions, 0.0, lambda fake: None, **{"COMMIT_INTERVAL_MS": "10", **env})
        self.batches: list[list[int]] = []

    process = KafkaConsumerRunner.process  # none of its own: a failed batch is retried as batches of one

    def process_batch(self, messages: list[Message]) -> None:
        self.batches.append([m.offset for m in messages])
        if any(m.offset == 7 for m in messages):
            raise PoisonMessageError("row 7 violates a constraint")
        self.processed += [(m.partition, m.offset) for m in messages]


def test_a_batch_handler_without_process_falls_back_to_batches_of_one() -> None:
    runner = BatchOnly({0: values(20)}, BATCH_SIZE="10", BATCH_MAX_WAIT_MS="1000")
    with running(runner):
        wait_until(lambda: runner.consumer.committed == {0: 20}, what="every record complete")
    assert runner.batches[0] == list(range(10))
    assert [[o] for o in range(10)] == [b for b in runner.batches if len(b) == 1], "then one by one"
    assert runner.batches[-1] == list(range(10, 20))
    assert sorted(runner.processed) == [(0, o) for o in range(20) if o != 7]
    assert runner.records_dead_lettered == 1


def test_process_and_process_batch_must_agree_on_being_async() -> None:
    class Mixed(Parallel):
        async def process_batch(self, messages: list[Message]) -> None:  # type: ignore[override]
            await asyncio.sleep(0)

    with pytest.raises(TypeError, match="must both be async"):
        Mixed({0: []})


def keyed(keys: int) -> Callable[[FakeConsumer], None]:
    def prepare(fake: FakeConsumer) -> None:
        for message in fake.log[0]:
            message._key = f"k{message._offset % keys}".encode()

    return prepare


def test_quick_records_run_on_the_poll_thread_and_a_retried_one_waits_in_a_worker_holding_back_only_its_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Which records count as quick is a moving average of measured durations: one preempted record on a busy
    # machine made the next ones "slow" and sent them to the workers. The threshold is lifted so that this test
    # judges where quick records run, not how fast the machine was.
    monkeypatch.setattr("neotool_common.consumer.workers.QUICK_RECORD_S", 1.0)
    # Ten records out at a time: the workers have measured that records take microseconds long before offset 200.
    runner = Parallel(
        {0: values(400)},
        keyed(10),
        MAX_CONCURRENCY="4",
        ORDERING="key",
        MAX_IN_FLIGHT="10",
        RETRY_BACKOFF_INITIAL_MS="50",
    )
    ran: dict[int, list[str]] = defaultdict(list)

    def fail_300_once(message: Message) -> None:
        ran[message.offset].append(threading.current_thread().name)
        if message.offset == 300 and len(ran[300]) == 1:
            raise ConnectionError("directory unavailable")

    runner.on_process = fail_300_once
    with running(runner):
        wait_until(lambda: runner.consumer.committed == {0: 400}, what="every record committed")
    assert ran[300][0] == "runner-g", "the first attempt ran on the poll thread"
    assert ran[300][1].startswith("neotool-worker-"), "the retry ran in a worker"
    assert {ran[o][0] for o in range(200, 400) if o % 10 != 0} == {"runner-g"}, "other keys stayed on the poll thread"
    key_0 = [offset for _, offset in runner.processed if offset % 10 == 0]
    assert key_0 == sorted(key_0), "its key's later records waited behind it"
    assert sorted(offset for _, offset in runner.processed) == list(range(400))
    assert metric(runner, "neotool_consumer_retries_total", topic="bank.v1") == 1


class AllPoison(Parallel):
    def process(self, message: Message) -> None:
        raise PoisonMessageError("bad routing number")


def test_the_circuit_breaker_stops_a_parallel_runner_without_waiting_out_the_grace_period() -> None:
    runner = AllPoison({0: values(50)}, MAX_CONCURRENCY="4", CIRCUIT_MAX_CONSECUTIVE_DLQ="3", SHUTDOWN_GRACE_MS="20000")
    started = time.monotonic()
    assert runner.run_to_exit_code() == 3
    assert time.monotonic() - started < 10, "stopped at once, not after SHUTDOWN_GRACE_MS"
    assert runner.records_dead_lettered >= 3
    assert runner.consumer.committed.get(0, 0) <= runner.records_dead_lettered
