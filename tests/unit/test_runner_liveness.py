"""Liveness (issue 12) where a real broker cannot be made to misbehave on cue: an in-memory consumer instead.

* A synchronous commit at revoke or shutdown must not skip a partition because an asynchronous commit of the
  same offset was *sent*: only what the coordinator *acknowledged* counts (that commit may still fail).
* A plain ``def process`` that returns an awaitable must not mark its record done without running it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition
from prometheus_client import CollectorRegistry

from neotool_common import KafkaConsumerRunner, Message, RunnerSettings
from neotool_common.testing.fakes import FakeConsumer, FakeMessage, FakeProducer
from neotool_common.testing.harness import running, wait_until
from neotool_common.testing.logs import capture_logs

from .test_runner_loop import values

TOPIC = "bank.v1"
EXIT_FAILED = 1


class InFlightCommits(FakeConsumer):
    """Asynchronous commits are sent but not acknowledged until :meth:`fail_in_flight`; synchronous ones are."""

    def __init__(self, config: dict[str, Any], topic: str, values: dict[int, list[bytes]]) -> None:
        super().__init__(config, topic, values)
        self.in_flight: list[dict[int, int]] = []
        self.synchronous: list[dict[int, int]] = []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        positions = {tp.partition: tp.offset for tp in offsets}
        self.commit_calls.append(positions)
        if asynchronous:
            self.in_flight.append(positions)
            return
        self.synchronous.append(positions)
        self.committed.update(positions)

    def fail_in_flight(self) -> None:
        """The coordinator answers the asynchronous commits: a rebalance is in progress, none is stored."""
        in_flight, self.in_flight = self.in_flight, []
        for positions in in_flight:
            failed = [TopicPartition(self.topic, p, o) for p, o in positions.items()]
            self._serve(lambda failed=failed: self._on_commit(KafkaError(KafkaError.REBALANCE_IN_PROGRESS), failed))


class Runner(KafkaConsumerRunner):
    def __init__(self, fake: type[FakeConsumer], partitions: dict[int, list[bytes]], **env: str) -> None:
        self.processed: list[tuple[int, int]] = []
        self.fake: Any = None

        def consumer(config: dict[str, Any]) -> FakeConsumer:
            self.fake = fake(config, TOPIC, partitions)
            return self.fake

        settings = RunnerSettings.from_env(
            {"KAFKA_BROKERS": "127.0.0.1:9", "KAFKA_TOPICS": TOPIC, "KAFKA_GROUP_ID": "g", "METRICS_PORT": "0", **env}
        )
        super().__init__(
            settings,
            registry=CollectorRegistry(),
            consumer_factory=consumer,
            producer_factory=lambda _: FakeProducer({}),
        )

    def process(self, message: Message) -> None:
        self.processed.append((message.partition, message.offset))


def revokes(runner: Runner) -> float:
    return runner.registry.get_sample_value("neotool_consumer_rebalances_total", {"group": "g", "kind": "revoke"}) or 0


def test_the_commit_at_revoke_is_made_although_an_async_commit_of_the_same_offset_is_in_flight() -> None:
    runner = Runner(InFlightCommits, {0: values(3)}, COMMIT_INTERVAL_MS="10")
    with running(runner):
        wait_until(lambda: runner.processed == [(0, 0), (0, 1), (0, 2)], what="three records processed")
        wait_until(lambda: runner.fake.in_flight == [{0: 3}], what="the asynchronous commit of offset 3 sent")
        runner.fake.rebalance(revoke=[0])
        wait_until(lambda: revokes(runner) == 1, what="partition 0 revoked")
        runner.fake.fail_in_flight()  # ... and only now does the asynchronous commit turn out to have failed
        wait_until(lambda: runner.fake.committed == {0: 3}, timeout=5, what="offset 3 committed for good")
    assert {0: 3} in runner.fake.synchronous, "the revoke committed synchronously what was only in flight"


def test_the_commit_at_shutdown_is_made_although_an_async_commit_of_the_same_offset_is_in_flight() -> None:
    runner = Runner(InFlightCommits, {0: values(3)}, COMMIT_INTERVAL_MS="10")
    with running(runner):
        wait_until(lambda: runner.processed == [(0, 0), (0, 1), (0, 2)], what="three records processed")
        wait_until(lambda: runner.fake.in_flight == [{0: 3}], what="the asynchronous commit of offset 3 sent")
    assert runner.fake.committed == {0: 3}, "the shutdown commit did not trust an unacknowledged commit"


def returns_the_coroutine(fn: Callable[[Any, Message], Awaitable[None]]) -> Callable[[Any, Message], Any]:
    def inner(self: Any, message: Message) -> Any:
        return fn(self, message)

    return inner


class AwaitableReturning(Runner):
    @returns_the_coroutine
    async def process(self, message: Message) -> None:  # type: ignore[override]
        self.processed.append((message.partition, message.offset))


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_a_plain_process_returning_an_awaitable_fails_the_runner_instead_of_completing_the_record() -> None:
    runner = AwaitableReturning(FakeConsumer, {0: values(3)}, COMMIT_INTERVAL_MS="10")
    result: list[int] = []
    with capture_logs() as events:
        thread = threading.Thread(target=lambda: result.append(runner.run_to_exit_code()), daemon=True)
        thread.start()
        thread.join(5)
        if thread.is_alive():
            runner.stop()
            thread.join(10)
    assert result == [EXIT_FAILED], "the runner stops by itself with exit code 1"
    assert runner.processed == [], "the coroutine never ran"
    assert runner.fake.committed == {}, "so its record is not committed"
    errors = [e for e in events if e["level"] in ("error", "critical")]
    assert any("awaitable" in json.dumps(e, default=str) for e in errors), f"an ERROR line says why: {errors}"


class MarkerAfterCommit(FakeConsumer):
    """The client reads a transaction's commit marker only after the runner committed the transaction's records."""

    def pass_marker(self, partition: int) -> None:
        with self._lock:
            self.positions[partition] += 1


def test_a_position_that_passes_a_transaction_marker_after_the_last_commit_is_committed_without_new_records() -> None:
    """Found by the nemesis (seed 101): a partition stayed committed one below its end offset until the revoke."""
    runner = Runner(MarkerAfterCommit, {0: values(3)}, COMMIT_INTERVAL_MS="10")
    with running(runner):
        wait_until(lambda: runner.fake.committed == {0: 3}, what="the three records committed")
        runner.fake.pass_marker(0)  # offset 3 is the marker: the position is now 4, and no record will come
        wait_until(lambda: runner.fake.committed == {0: 4}, timeout=5, what="the position past the marker committed")
    assert runner.processed == [(0, 0), (0, 1), (0, 2)]


class PositionMovesAtClose(FakeConsumer):
    """By the time ``close()`` revokes, the client's position is past records the runner was never given."""

    def close(self) -> None:
        with self._lock:
            self.positions[0] += 5
        super().close()


def test_the_revoke_that_close_runs_at_shutdown_commits_nothing_past_the_shutdown_commit() -> None:
    """Found by the nemesis (seeds 100 and 105): the revoke commit in close() lost records it never handled."""
    runner = Runner(PositionMovesAtClose, {0: values(3)}, COMMIT_INTERVAL_MS="10")
    with running(runner):
        wait_until(lambda: runner.fake.committed == {0: 3}, what="the three records committed")
    assert runner.fake.committed == {0: 3}, "nothing committed past the records the runner handled"


class ReorderedCommits(FakeConsumer):
    """Asynchronous commits are held until :meth:`acknowledge`, which stores and answers them in the order given:
    a coordinator that moved can apply an older commit after a newer one, and the older one is what it keeps."""

    def __init__(self, config: dict[str, Any], topic: str, values: dict[int, list[bytes]]) -> None:
        super().__init__(config, topic, values)
        self.in_flight: list[dict[int, int]] = []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        if not asynchronous:
            super().commit(offsets, asynchronous)
            return
        self.commit_calls.append({tp.partition: tp.offset for tp in offsets})
        self.in_flight.append({tp.partition: tp.offset for tp in offsets})

    def append(self, partition: int, more: list[bytes]) -> None:
        with self._lock:
            log = self.log[partition]
            log += [FakeMessage(self.topic, partition, len(log) + i, v) for i, v in enumerate(more)]
        self._wake.set()

    def acknowledge(self, order: list[int]) -> None:
        """Store and answer the commits in flight of these offsets (partition 0), in this order."""
        for offset in order:
            self.in_flight.remove({0: offset})
            self.committed[0] = offset
            answered = [TopicPartition(self.topic, 0, offset)]
            self._serve(lambda answered=answered: self._on_commit(None, answered))


def test_an_older_commit_acknowledged_after_a_newer_one_is_followed_by_the_newer_one_again() -> None:
    """Found by the nemesis (seed 129, a partition leader SIGKILLed): async commits of 734 queued while the
    coordinator moved were answered after the commit of 978; the group kept 734, the runner believed 978 and
    never committed again: committed 734 of 978 until the shutdown."""
    runner = Runner(ReorderedCommits, {0: values(3)}, COMMIT_INTERVAL_MS="10")
    with running(runner):
        wait_until(lambda: {0: 3} in runner.fake.in_flight, what="the commit of offset 3 sent")
        runner.fake.append(0, values(3))
        wait_until(lambda: {0: 6} in runner.fake.in_flight, what="the commit of offset 6 sent")
        runner.fake.acknowledge([6, 3])  # the group's committed offset is 3 again

        def committed_six_again() -> bool:
            if {0: 6} in runner.fake.in_flight:
                runner.fake.acknowledge([6])
            return runner.fake.committed == {0: 6}

        wait_until(committed_six_again, timeout=5, what="offset 6 committed again after the older answer")
    assert runner.processed == [(0, o) for o in range(6)]
