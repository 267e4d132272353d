"""Two runners in one group on a 4-partition topic: work is split, and a member joining mid-stream loses nothing.

Every test runs under each group protocol: classic with the eager ``range`` assignor (a rebalance revokes every
partition), classic cooperative-sticky (the runner's default) and Kafka 4's consumer protocol (KIP-848).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import pytest

from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.records.message import Message
from neotool_common.testing.harness import committed_offsets, running, wait_until
from neotool_common.testing.kafka import KafkaEndpoint

from .runner_support import RecordingConsumer, envelope, every_group_protocol, group_timing, produce, settings_for

pytestmark = pytest.mark.kafka

PARTITIONS = 4


class PacedConsumer(RecordingConsumer):
    def process(self, message: Message) -> None:
        time.sleep(0.005)  # the work, so that the stream is still flowing when the second member joins
        super().process(message)


class WedgingConsumer(RecordingConsumer):
    """The first record with ``{"wedge": true}`` blocks ``process()`` (and the poll loop) until ``release``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wedged = threading.Event()
        self.release = threading.Event()

    def process(self, message: Message) -> None:
        if message.payload.get("wedge") and not self.wedged.is_set():
            self.wedged.set()
            self.release.wait(60)
        super().process(message)


def rebalances(runner: RecordingConsumer, kind: str) -> float:
    value = runner.registry.get_sample_value(
        "neotool_consumer_rebalances_total", {"group": runner.metrics.group, "kind": kind}
    )
    return value or 0


def produce_everywhere(kafka: KafkaEndpoint, topic: str, per_partition: int) -> list[str]:
    ids = []
    for partition in range(PARTITIONS):
        batch = [f"p{partition}-{i:03}" for i in range(per_partition)]
        produce(kafka.bootstrap_servers, topic, [(i.encode(), envelope(i)) for i in batch], partition=partition)
        ids += batch
    return ids


def assigned(runner: RecordingConsumer) -> float:
    return (
        runner.registry.get_sample_value("neotool_consumer_assigned_partitions", {"group": runner.metrics.group}) or 0
    )


def processed_ids(*runners: RecordingConsumer) -> list[str]:
    return [m.record_id for runner in runners for m in runner.processed]


def assert_in_order_per_partition(runner: RecordingConsumer) -> None:
    offsets: dict[int, list[int]] = defaultdict(list)
    for message in runner.processed:
        offsets[message.partition].append(message.offset)
    for partition, seen in offsets.items():
        assert seen == sorted(seen), f"partition {partition} out of order"


def all_committed(kafka: KafkaEndpoint, group: str, topic: str, per_partition: int) -> bool:
    return committed_offsets(kafka.bootstrap_servers, group, topic, PARTITIONS) == dict.fromkeys(
        range(PARTITIONS), per_partition
    )


@every_group_protocol
def test_two_members_split_the_partitions_and_process_every_record_exactly_once(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], protocol: dict[str, str]
) -> None:
    topic = make_topic(PARTITIONS)
    make_topic(name=dlq_topic_for(topic))
    first = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic, **protocol))
    group = first.settings.group_id
    second = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic, group, **protocol))

    with running(first), running(second):
        wait_until(lambda: assigned(first) == assigned(second) == PARTITIONS / 2, what="two partitions each")
        ids = produce_everywhere(kafka, topic, 50)
        wait_until(lambda: len(processed_ids(first, second)) >= len(ids), what="every record processed")
        wait_until(lambda: all_committed(kafka, group, topic, 50), what="every partition committed to its end")

    assert Counter(processed_ids(first, second)) == Counter(ids), "each record exactly once across the group"
    partitions_of = [{m.partition for m in runner.processed} for runner in (first, second)]
    assert not partitions_of[0] & partitions_of[1], "a partition belongs to one member"
    assert len(partitions_of[0]) == len(partitions_of[1]) == PARTITIONS / 2
    for runner in (first, second):
        assert_in_order_per_partition(runner)


@every_group_protocol
def test_a_member_joining_mid_stream_takes_partitions_over_without_losing_a_record(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], protocol: dict[str, str]
) -> None:
    topic = make_topic(PARTITIONS)
    make_topic(name=dlq_topic_for(topic))
    ids = produce_everywhere(kafka, topic, 100)
    first = PacedConsumer(settings_for(kafka.bootstrap_servers, topic, **protocol))
    group = first.settings.group_id
    second = PacedConsumer(settings_for(kafka.bootstrap_servers, topic, group, **protocol))

    with ExitStack() as stack:
        stack.enter_context(running(first))
        wait_until(lambda: len(first.processed) >= 40, what="the first member well into the stream")
        stack.enter_context(running(second))
        wait_until(lambda: set(processed_ids(first, second)) == set(ids), what="every record processed")
        wait_until(lambda: all_committed(kafka, group, topic, 100), what="every partition committed to its end")
        revokes = first.registry.get_sample_value(
            "neotool_consumer_rebalances_total", {"group": group, "kind": "revoke"}
        )

    assert revokes, "the first member gave partitions up while it was consuming"
    assert second.processed, "the second member took some over"
    assert len(first.processed) < len(ids), "the first member did not do all the work"
    counts = Counter(processed_ids(first, second))
    assert set(counts) == set(ids), "nothing lost"
    assert max(counts.values()) == 1, "the revoke commit is synchronous, so the new owner repeats nothing"
    for runner in (first, second):
        assert_in_order_per_partition(runner)


@every_group_protocol
def test_a_member_that_stops_polling_loses_its_partition_and_the_next_owner_resumes_at_the_last_commit(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], protocol: dict[str, str]
) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    ids = [f"w-{i:02}" for i in range(30)]
    produce(kafka.bootstrap_servers, topic, [(i.encode(), envelope(i, {"wedge": i == "w-10"})) for i in ids])
    # Past max.poll.interval.ms without a poll, librdkafka leaves the group for the member: its partition is lost.
    env = {**protocol, **group_timing(protocol, session_ms=3000, heartbeat_ms=300)}
    first = WedgingConsumer(
        settings_for(kafka.bootstrap_servers, topic, KAFKA_CONFIG_MAX_POLL_INTERVAL_MS="3000", **env)
    )
    group = first.settings.group_id
    second = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic, group, **env))

    with ExitStack() as stack:
        stack.enter_context(running(first))
        assert first.wedged.wait(30), "the first member reached the record that wedges it"
        at_loss = committed_offsets(kafka.bootstrap_servers, group, topic, 1)[0]  # it cannot commit while wedged
        stack.enter_context(running(second))
        wait_until(lambda: len(second.processed) >= len(ids) - max(at_loss, 0), timeout=60, what="the new owner")
        first.release.set()
        # Eager: the rebalance the new member started revoked the partition (a callback queued while the member
        # was wedged) before the eviction. Cooperative and consumer protocol: the partition stayed where it was
        # until the eviction, so it is reported lost.
        told = "revoke" if protocol.get("KAFKA_CONFIG_PARTITION_ASSIGNMENT_STRATEGY") == "range" else "lost"
        wait_until(lambda: rebalances(first, told) >= 1, what=f"the first member told its partition was {told}")
        wait_until(lambda: all_committed_1(kafka, group, topic, len(ids)), what="committed to the end")

    assert [m.record_id for m in first.processed] == ids[: len(first.processed)], "in order, then it stopped"
    assert [m.offset for m in second.processed] == list(range(max(at_loss, 0), len(ids))), (
        "the new owner started at the offset committed before the loss and repeated nothing below it"
    )
    assert first.attempts["w-10"] == 1
    assert committed_offsets(kafka.bootstrap_servers, group, topic, 1) == {0: len(ids)}


def all_committed_1(kafka: KafkaEndpoint, group: str, topic: str, end: int) -> bool:
    return committed_offsets(kafka.bootstrap_servers, group, topic, 1) == {0: end}
