"""LagMonitor against a fake offset source, a fake consumer and a fake clock: what the lag gauges say, and when."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry

from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer.group_offsets import GroupOffsetReader
from neotool_common.consumer.lag import LagMonitor
from neotool_common.consumer.offset_source import NO_OFFSET, ClusterOffsets
from neotool_common.observability.logs import configure_logging, reset_logging
from neotool_common.observability.metrics import ConsumerMetrics
from neotool_common.testing.harness import wait_until

GROUP = "g"
TOPIC = "bank.v1"
P0 = (TOPIC, 0)
P1 = (TOPIC, 1)
INTERVAL = 5.0

Key = tuple[str, int]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSource:
    """Answers a request when the test says so (``answer()``), from ``ends`` and ``group``."""

    def __init__(self) -> None:
        self.ends: dict[Key, int] = {}
        self.group: dict[Key, int] = {}
        self.end_requests: list[list[Key]] = []
        self.committed_requests: list[list[Key]] = []
        self.fail_ends: Exception | None = None
        self.closed = False
        self._open: list[tuple[Future[dict[Key, int]], dict[Key, int] | Exception]] = []

    def end_offsets(self, partitions: Sequence[Key]) -> Future[dict[Key, int]]:
        self.end_requests.append(list(partitions))
        answer = self.fail_ends or {k: self.ends[k] for k in partitions if k in self.ends}
        return self._later(answer)

    def committed_offsets(self, partitions: Sequence[Key]) -> Future[dict[Key, int]]:
        self.committed_requests.append(list(partitions))
        return self._later({k: self.group.get(k, NO_OFFSET) for k in partitions})

    def close(self) -> None:
        self.closed = True

    def answer(self) -> None:
        for future, result in self._open:
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
        self._open.clear()

    def _later(self, result: dict[Key, int] | Exception) -> Future[dict[Key, int]]:
        future: Future[dict[Key, int]] = Future()
        self._open.append((future, result))
        return future


class FakeConsumer:
    """The two local calls the monitor makes: the consumer's position and its cached watermarks."""

    def __init__(self) -> None:
        self.positions: dict[Key, int] = {}
        self.low: dict[Key, int] = {}

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.positions.get((tp.topic, tp.partition), -1001))
            for tp in partitions
        ]

    def get_watermark_offsets(self, partition: TopicPartition, cached: bool = False) -> tuple[int, int]:
        assert cached, "the monitor never blocks the poll thread on a watermark request"
        return self.low.get((partition.topic, partition.partition), -1001), -1001


class Harness:
    def __init__(self, reads_from_start: bool = True) -> None:
        self.registry = CollectorRegistry()
        self.clock = FakeClock()
        self.source = FakeSource()
        self.consumer = FakeConsumer()
        self.metrics = ConsumerMetrics(self.registry, GROUP)
        self.monitor = LagMonitor(
            self.metrics, self.source, self.consumer, reads_from_start=reads_from_start, interval_s=INTERVAL
        )
        self.assigned: set[Key] = {P0}

    def tick(self) -> None:
        self.monitor.tick(self.clock.monotonic(), self.assigned)

    def refresh(self) -> None:
        """One due refresh whose answers come before the next loop turn."""
        self.tick()
        self.source.answer()
        self.tick()

    def sample(self, name: str, key: Key = P0, **labels: str) -> float | None:
        return self.registry.get_sample_value(
            name, {"topic": key[0], "partition": str(key[1]), "group": GROUP, **labels}
        )

    def lag(self, key: Key = P0) -> float | None:
        return self.sample("neotool_consumer_lag_records", key)

    def stalled(self, key: Key = P0) -> float | None:
        return self.sample("neotool_consumer_partition_stalled_seconds", key)

    def paused(self, reason: str, key: Key = P0) -> float | None:
        return self.sample("neotool_consumer_partition_paused", key, reason=reason)


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    yield stream
    reset_logging()


def test_the_first_turn_asks_and_no_series_exists_before_the_answer(h: Harness) -> None:
    h.source.ends[P0] = 10
    h.monitor.committed(TOPIC, 0, 4)
    h.tick()
    assert h.source.end_requests == [[P0]]
    assert h.lag() is None, "a lag of 0 before anything is known would read as caught up"
    h.source.answer()
    h.tick()
    assert h.lag() == 6


def test_only_a_due_turn_asks_again(h: Harness) -> None:
    h.source.ends[P0] = 10
    h.refresh()
    for _ in range(10):
        h.clock.advance(INTERVAL / 10 - 0.001)
        h.tick()
    assert len(h.source.end_requests) == 1
    h.clock.advance(0.02)
    h.tick()
    assert len(h.source.end_requests) == 2


def test_a_stuck_partition_shows_growing_lag_and_stalled_seconds_until_it_commits_and_catches_up(h: Harness) -> None:
    h.monitor.committed(TOPIC, 0, 3)
    h.source.ends[P0] = 10
    h.refresh()
    assert (h.lag(), h.stalled()) == (7, 0)
    for end, stalled in [(15, 5), (20, 10), (20, 15)]:  # records keep arriving; nothing is committed
        h.clock.advance(INTERVAL)
        h.source.ends[P0] = end
        h.refresh()
        assert (h.lag(), h.stalled()) == (end - 3, stalled)

    h.monitor.committed(TOPIC, 0, 12)  # it moves: the stall is over, although lag is left
    h.clock.advance(INTERVAL)
    h.refresh()
    assert (h.lag(), h.stalled()) == (8, 0)
    h.clock.advance(INTERVAL)
    h.refresh()
    assert h.stalled() == INTERVAL

    h.monitor.committed(TOPIC, 0, 20)  # caught up
    h.clock.advance(INTERVAL)
    h.refresh()
    assert (h.lag(), h.stalled()) == (0, 0)
    h.clock.advance(INTERVAL)
    h.refresh()
    assert (h.lag(), h.stalled()) == (0, 0), "caught up is not stalled, however long it lasts"


def test_forget_removes_every_series_of_the_partition_and_a_late_answer_does_not_bring_them_back(h: Harness) -> None:
    h.assigned = {P0, P1}
    h.source.ends.update({P0: 10, P1: 10})
    h.monitor.committed(TOPIC, 0, 5)
    h.monitor.committed(TOPIC, 1, 5)
    h.refresh()
    h.monitor.set_paused(TOPIC, 0, frozenset({"retry_backoff", "dlq_backpressure"}))
    h.clock.advance(INTERVAL)
    h.tick()  # a request is out ...
    h.monitor.forget(TOPIC, 0)  # ... when the partition is revoked
    h.assigned = {P1}
    assert (h.lag(), h.stalled(), h.paused("retry_backoff"), h.paused("dlq_backpressure")) == (None,) * 4
    h.source.answer()
    h.tick()
    assert h.lag() is None
    assert h.lag(P1) == 5


def test_a_partition_no_longer_assigned_is_forgotten_at_the_next_refresh(h: Harness) -> None:
    h.source.ends[P0] = 10
    h.monitor.committed(TOPIC, 0, 5)
    h.refresh()
    h.monitor.set_paused(TOPIC, 1, frozenset({"retry_backoff"}))
    h.assigned = set()
    h.clock.advance(INTERVAL)
    h.tick()
    assert (h.lag(), h.paused("retry_backoff", P1)) == (None, None)


def test_pause_reasons_are_one_series_each_while_they_last(h: Harness) -> None:
    h.monitor.set_paused(TOPIC, 0, frozenset({"retry_backoff"}))
    assert h.paused("retry_backoff") == 1
    h.monitor.set_paused(TOPIC, 0, frozenset({"retry_backoff", "dlq_backpressure"}))
    assert (h.paused("retry_backoff"), h.paused("dlq_backpressure")) == (1, 1)
    h.monitor.set_paused(TOPIC, 0, frozenset({"dlq_backpressure"}))
    assert (h.paused("retry_backoff"), h.paused("dlq_backpressure")) == (None, 1)
    h.monitor.set_paused(TOPIC, 0, frozenset())
    assert h.paused("dlq_backpressure") is None
    with pytest.raises(ValueError, match="retry-backoff"):
        h.monitor.set_paused(TOPIC, 0, frozenset({"retry-backoff"}))


def test_before_this_member_commits_lag_counts_from_the_groups_committed_offset(h: Harness) -> None:
    h.source.ends[P0] = 50
    h.source.group[P0] = 30
    h.refresh()
    assert h.lag() == 20
    assert h.source.committed_requests == [[P0]]
    h.monitor.committed(TOPIC, 0, 40)
    h.clock.advance(INTERVAL)
    h.refresh()
    assert h.lag() == 10
    assert len(h.source.committed_requests) == 1, "the group's offset is asked once; commits are reported"


def test_a_partition_the_group_never_committed_counts_from_where_the_consumer_starts(h: Harness) -> None:
    h.source.ends[P0] = 50
    h.consumer.low[P0] = 8  # auto.offset.reset=earliest: it is read from its start
    h.consumer.positions[P0] = 12
    h.refresh()
    assert h.lag() == 42
    assert len(h.source.committed_requests) == 1
    h.clock.advance(INTERVAL)
    h.refresh()
    assert len(h.source.committed_requests) == 1, "'no committed offset' is an answer too"

    latest = Harness(reads_from_start=False)
    latest.source.ends[P0] = 50
    latest.consumer.low[P0] = 8
    latest.consumer.positions[P0] = 12
    latest.refresh()
    assert latest.lag() == 38


def test_a_partition_with_no_known_start_has_no_series(h: Harness) -> None:
    h.source.ends[P0] = 50  # never committed, nothing fetched yet, no position: the lag is unknown, not 0
    h.refresh()
    assert (h.lag(), h.stalled()) == (None, None)


def test_a_failed_refresh_is_logged_once_a_minute_and_stalled_seconds_keep_counting(
    h: Harness, log_stream: io.StringIO
) -> None:
    h.monitor.committed(TOPIC, 0, 3)
    h.source.ends[P0] = 10
    h.refresh()
    h.source.fail_ends = RuntimeError("all brokers down")
    for _ in range(4):
        h.clock.advance(INTERVAL)
        h.refresh()
    assert (h.lag(), h.stalled()) == (7, 4 * INTERVAL)
    failures = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [(line["level"], line["error"]) for line in failures] == [("warning", "all brokers down")]


def test_a_request_that_never_answers_is_given_up_and_asked_again(h: Harness) -> None:
    h.source.ends[P0] = 10
    h.tick()
    h.clock.advance(2 * INTERVAL)
    h.tick()
    assert len(h.source.end_requests) == 1, "a slow answer is waited for"
    h.clock.advance(INTERVAL + 0.001)
    h.tick()
    assert len(h.source.end_requests) == 2


def test_close_removes_every_series_and_closes_the_source(h: Harness) -> None:
    h.source.ends[P0] = 10
    h.monitor.committed(TOPIC, 0, 5)
    h.refresh()
    h.monitor.set_paused(TOPIC, 1, frozenset({"in_flight_limit"}))
    h.monitor.close()
    assert (h.lag(), h.stalled(), h.paused("in_flight_limit", P1)) == (None, None, None)
    assert h.source.closed


def _settings(**extra: str) -> RunnerSettings:
    base = {"KAFKA_BROKERS": "127.0.0.1:9", "KAFKA_TOPICS": TOPIC, "KAFKA_GROUP_ID": GROUP}
    return RunnerSettings.from_env({**base, **extra})


def test_the_admin_client_gets_no_consumer_settings_and_follows_the_isolation_level() -> None:
    made: list[dict[str, Any]] = []
    admin = _RecordingAdmin()
    settings = _settings(
        KAFKA_CONFIG_SESSION_TIMEOUT_MS="6000",
        KAFKA_CONFIG_ISOLATION_LEVEL="read_uncommitted",
        KAFKA_CONFIG_SOCKET_KEEPALIVE_ENABLE="true",
    )
    source = ClusterOffsets.for_settings(
        settings, admin_factory=lambda config: made.append(config) or admin, consumer_factory=_OffsetConsumer
    )
    assert made == [], "no client before the first request"
    source.end_offsets([P0])
    (config,) = made
    assert admin.isolation_levels == ["READ_UNCOMMITTED"]
    assert "session.timeout.ms" not in config
    assert "isolation.level" not in config
    assert config["socket.keepalive.enable"] == "true"
    assert config["bootstrap.servers"] == "127.0.0.1:9"
    source.close()


def test_committed_offsets_come_from_a_consumer_of_the_group_that_never_joins_it_on_a_thread_of_its_own() -> None:
    admin = _RecordingAdmin()
    made: list[_OffsetConsumer] = []

    def consumer(config: dict[str, Any]) -> _OffsetConsumer:
        made.append(_OffsetConsumer(config, {P0: 7}))
        return made[-1]

    source = ClusterOffsets.for_settings(
        _settings(KAFKA_CONFIG_GROUP_PROTOCOL="consumer"), admin_factory=lambda _: admin, consumer_factory=consumer
    )
    assert source.committed_offsets([P0, P1]).result(timeout=5) == {P0: 7, P1: NO_OFFSET}
    assert source.committed_offsets([P1]).result(timeout=5) == {P1: NO_OFFSET}
    (reader,) = made
    assert admin.group_offset_requests == 0, "never the admin client's coordinator path (librdkafka#4605)"
    assert reader.config["group.id"] == GROUP
    assert reader.config["group.protocol"] == "consumer"
    assert (reader.config["enable.auto.commit"], reader.config["enable.auto.offset.store"]) == (False, False)
    assert reader.calls == ["committed", "committed"], "never subscribed nor assigned: no member of the group"
    source.close()
    assert reader.calls[-1] == "close"
    assert len(set(reader.threads)) == 1, "made, used and closed on one thread"
    assert reader.threads[0] != threading.current_thread().name


def test_a_failed_question_fails_its_future_and_the_next_one_asks_again() -> None:
    failing = _OffsetConsumer({}, {P0: 3}, fail=KafkaException(KafkaError(KafkaError._TRANSPORT)))
    reader = GroupOffsetReader({}, 1.0, lambda _: failing)
    with pytest.raises(KafkaException):
        reader.committed_offsets([P0]).result(timeout=5)
    failing.fail = None
    assert reader.committed_offsets([P0]).result(timeout=5) == {P0: 3}
    reader.close()
    assert failing.calls == ["committed", "committed", "close"]


def test_close_does_not_wait_for_a_question_under_way_and_the_thread_closes_its_consumer_after_it() -> None:
    """A runner's shutdown is not held up by a question waiting out its timeout on an unreachable broker."""
    release, asked = threading.Event(), threading.Event()

    class Slow(_OffsetConsumer):
        def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
            asked.set()
            release.wait(30)
            return super().committed(partitions, timeout)

    slow = Slow({}, {P0: 3})
    reader = GroupOffsetReader({}, 1.0, lambda _: slow)
    answer = reader.committed_offsets([P0])
    assert asked.wait(5)
    reader.close()  # returns while the question is still under way
    assert not answer.done()
    release.set()
    assert answer.result(timeout=5) == {P0: 3}
    wait_until(lambda: slow.calls[-1:] == ["close"], timeout=5, what="the thread closed its consumer")
    assert len(set(slow.threads[1:])) == 1, "used and closed on the reader's thread"


def test_closing_a_reader_that_never_asked_makes_no_client() -> None:
    made: list[dict[str, Any]] = []
    GroupOffsetReader({}, 1.0, made.append).close()
    assert made == []


class _OffsetConsumer:
    """A consumer that knows only ``committed`` and ``close`` (a call to anything else fails the test)."""

    def __init__(
        self, config: dict[str, Any], offsets: dict[Key, int] | None = None, fail: Exception | None = None
    ) -> None:
        self.config = config
        self.offsets = offsets or {}
        self.fail = fail
        self.calls: list[str] = []
        self.threads = [threading.current_thread().name]

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.calls.append("committed")
        self.threads.append(threading.current_thread().name)
        if self.fail is not None:
            raise self.fail
        return [
            TopicPartition(tp.topic, tp.partition, self.offsets.get((tp.topic, tp.partition), -1001))
            for tp in partitions
        ]

    def close(self) -> None:
        self.calls.append("close")
        self.threads.append(threading.current_thread().name)


class _RecordingAdmin:
    def __init__(self) -> None:
        self.isolation_levels: list[str] = []
        self.group_offset_requests = 0

    def list_offsets(self, request: dict[Any, Any], isolation_level: Any, request_timeout: float) -> dict[Any, Any]:
        self.isolation_levels.append(isolation_level.name)
        return {tp: Future() for tp in request}

    def list_consumer_group_offsets(self, requests: list[Any], request_timeout: float) -> dict[str, Future[Any]]:
        self.group_offset_requests += 1
        return {GROUP: Future()}
