"""The lag gauges on a real broker: a stuck partition shows growing lag, stalled seconds and why it is paused."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from neotool_common.consumer import lag
from neotool_common.consumer.offset_source import NO_OFFSET, ClusterOffsets
from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.records.message import Message
from neotool_common.testing.harness import running, wait_until
from neotool_common.testing.kafka import KafkaEndpoint

from .runner_support import GROUP_PROTOCOLS, RecordingConsumer, envelope, produce, settings_for

pytestmark = pytest.mark.kafka

REFRESH_S = 0.5


class StuckConsumer(RecordingConsumer):
    """Fails every record marked ``{"stuck": true}`` until ``release`` is set (a dependency that is down)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()

    def process(self, message: Message) -> None:
        if message.payload.get("stuck") and not self.release.is_set():
            raise ConnectionError("enrichment service down")
        super().process(message)


def gauge(runner: RecordingConsumer, name: str, topic: str, partition: int, **labels: str) -> float | None:
    wanted = {"topic": topic, "partition": str(partition), "group": runner.metrics.group, **labels}
    return runner.registry.get_sample_value(name, wanted)


def lag_of(runner: RecordingConsumer, topic: str, partition: int) -> float | None:
    return gauge(runner, "neotool_consumer_lag_records", topic, partition)


def stalled_of(runner: RecordingConsumer, topic: str, partition: int) -> float | None:
    return gauge(runner, "neotool_consumer_partition_stalled_seconds", topic, partition)


def paused_of(runner: RecordingConsumer, topic: str, partition: int) -> float | None:
    return gauge(runner, "neotool_consumer_partition_paused", topic, partition, reason="retry_backoff")


def good(prefix: str, count: int) -> list[tuple[bytes, bytes]]:
    return [(f"{prefix}{i}".encode(), envelope(f"{prefix}{i}")) for i in range(count)]


def test_a_stuck_partition_shows_fresh_lag_stalled_seconds_and_its_pause_and_its_series_leave_with_it(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lag, "LAG_REFRESH_S", REFRESH_S)
    topic = make_topic(partitions=2)
    make_topic(name=dlq_topic_for(topic))
    bootstrap = kafka.bootstrap_servers
    produce(bootstrap, topic, [*good("a", 5), (b"stuck", envelope("stuck", {"stuck": True})), *good("b", 4)])
    produce(bootstrap, topic, good("c", 6), partition=1)
    env = {"RETRY_MAX_ATTEMPTS": "100000", "RETRY_BACKOFF_INITIAL_MS": "400", "RETRY_BACKOFF_MAX_MS": "400"}
    settings = settings_for(bootstrap, topic, **env)
    first = StuckConsumer(settings)

    with running(first):
        # Partition 0 is stuck at offset 5 with 10 records written: committed 5, lag 5, and the stall counts up.
        wait_until(lambda: lag_of(first, topic, 0) == 5, what="lag 5 on the stuck partition")
        wait_until(lambda: (stalled_of(first, topic, 0) or 0) > 0, what="stalled seconds above 0")
        wait_until(lambda: paused_of(first, topic, 0) == 1, what="the retry_backoff pause series")
        wait_until(lambda: lag_of(first, topic, 1) == 0, what="partition 1 caught up")
        assert stalled_of(first, topic, 1) == 0

        # Records keep arriving while it is paused: the gauge follows them instead of freezing.
        produce(bootstrap, topic, good("d", 7), partition=0)
        wait_until(lambda: lag_of(first, topic, 0) == 12, what="lag refreshed to 12 while paused")
        stalled = stalled_of(first, topic, 0) or 0
        wait_until(lambda: (stalled_of(first, topic, 0) or 0) > stalled, what="stalled seconds still rising")

        first.release.set()  # the dependency is back: it catches up
        wait_until(lambda: lag_of(first, topic, 0) == 0, what="lag 0 once caught up")
        wait_until(lambda: stalled_of(first, topic, 0) == 0, what="stalled 0 once caught up")
        wait_until(lambda: paused_of(first, topic, 0) is None, what="the pause series gone")

        # A second member joins: whatever partition the first one loses, it stops reporting.
        second = StuckConsumer(settings_for(bootstrap, topic, group=settings.group_id, **env))
        with running(second):
            wait_until(lambda: len(second.assignment) == 1 and len(first.assignment) == 1, what="one partition each")
            (kept,) = {p for _, p in first.assignment}
            (gone,) = {0, 1} - {kept}
            wait_until(lambda: lag_of(second, topic, gone) == 0, what="the new owner reporting the moved partition")
            assert lag_of(first, topic, gone) is None
            assert stalled_of(first, topic, gone) is None
            assert lag_of(first, topic, kept) == 0
            samples = [
                s
                for metric in first.registry.collect()
                for s in metric.samples
                if s.labels.get("partition") == str(gone)
            ]
            assert samples == [], "no series of a partition this member no longer owns"


def test_a_partition_stuck_at_its_first_record_counts_its_lag_from_the_start_of_the_partition(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lag, "LAG_REFRESH_S", REFRESH_S)
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    bootstrap = kafka.bootstrap_servers
    produce(bootstrap, topic, [(b"stuck", envelope("stuck", {"stuck": True})), *good("a", 3)])
    env = {"RETRY_MAX_ATTEMPTS": "100000", "RETRY_BACKOFF_INITIAL_MS": "400", "RETRY_BACKOFF_MAX_MS": "400"}
    runner = StuckConsumer(settings_for(bootstrap, topic, **env))
    with running(runner):
        # The group never committed anything: a restart would read it from offset 0, so all 4 records are lag.
        wait_until(lambda: lag_of(runner, topic, 0) == 4, what="lag 4 with nothing ever committed")
        wait_until(lambda: (stalled_of(runner, topic, 0) or 0) > 0, what="stalled seconds above 0")
        runner.release.set()
        wait_until(lambda: (lag_of(runner, topic, 0), stalled_of(runner, topic, 0)) == (0, 0), what="caught up")


@pytest.mark.parametrize("protocol", ["classic-cooperative", "consumer"])
def test_the_committed_offsets_are_read_by_a_consumer_that_never_joins_the_group(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], protocol: str
) -> None:
    topic = make_topic(partitions=2)
    make_topic(name=dlq_topic_for(topic))
    bootstrap = kafka.bootstrap_servers
    produce(bootstrap, topic, good("a", 3), partition=0)
    settings = settings_for(bootstrap, topic, **GROUP_PROTOCOLS[protocol])
    runner = RecordingConsumer(settings)
    source = ClusterOffsets.for_settings(settings)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    with running(runner):
        wait_until(lambda: len(runner.assignment) == 2, what="both partitions assigned")
        wait_until(lambda: len(runner.processed) == 3, what="the three records processed")
        before = rebalances(runner)

        def answer() -> dict[tuple[str, int], int] | None:
            try:
                return source.committed_offsets([(topic, 0), (topic, 1)]).result(timeout=10)
            except Exception:  # noqa: BLE001 - the coordinator may not be ready yet: asked again
                return None

        wait_until(lambda: answer() == {(topic, 0): 3, (topic, 1): NO_OFFSET}, what="the group's offsets")
        (described,) = admin.describe_consumer_groups([settings.group_id], request_timeout=10).values()
        members = described.result().members
        assert [m.client_id for m in members if m.client_id == "neotool-lag-monitor"] == []
        assert len(members) == 1, "the offset reader is no member of the group"
        source.close()
        assert rebalances(runner) == before, "asking the offsets moved no partition"
        assert len(runner.assignment) == 2


def rebalances(runner: RecordingConsumer) -> dict[str, float]:
    return {
        s.labels["kind"]: s.value
        for metric in runner.registry.collect()
        for s in metric.samples
        if s.name == "neotool_consumer_rebalances_total"
    }
