"""Liveness (issue 12): a partition the runner paused flows again, whatever happened to it while it was paused.

The runner pauses a partition while a record waits out a retry backoff, and while records are held behind an
unacknowledged dead-letter write. Each test pauses partitions for one of those reasons, makes the partition go
away and come back (an eager rebalance, a partition leaving and returning under cooperative-sticky, a member
evicted past ``max.poll.interval.ms``), and asserts safety — every record produced is processed or
dead-lettered — and liveness — the group's committed offset reaches the end offset within a bounded wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from neotool_common import KafkaConsumerRunner, Message, dlq_topic_for
from neotool_common.testing.harness import read_topic, running, wait_until
from neotool_common.testing.kafka import KafkaEndpoint

from .liveness_support import group_member, rebalances, wait_for_lag_0
from .runner_support import RecordingConsumer, envelope, produce, settings_for

pytestmark = pytest.mark.kafka

STRATEGIES = [pytest.param("range", id="eager-range"), pytest.param("cooperative-sticky", id="cooperative-sticky")]
# Each failure of a failing record is followed by exactly this backoff (initial = max: no growth, no jitter).
BACKOFF = {"RETRY_BACKOFF_INITIAL_MS": "4000", "RETRY_BACKOFF_MAX_MS": "4000"}


def good(prefix: str, count: int, start: int = 0) -> list[tuple[bytes | None, bytes | None]]:
    return [(f"{prefix}-{i:02}".encode(), envelope(f"{prefix}-{i:02}")) for i in range(start, start + count)]


def ids_of(records: list[tuple[bytes | None, bytes | None]]) -> set[str]:
    return {key.decode() for key, _ in records if key is not None}


def processed(runner: RecordingConsumer) -> set[str]:
    with runner.lock:
        return {m.record_id for m in runner.processed}


def write_failures(runner: RecordingConsumer, topic: str) -> float:
    labels = {"topic": topic, "group": runner.settings.group_id}
    return runner.registry.get_sample_value("neotool_consumer_dlq_write_failures_total", labels) or 0.0


def test_a_partition_paused_for_a_retry_resumes_after_an_eager_rebalance_revokes_and_assigns_it_back(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    """The issue's reproduction: range assignor, a second member joins the group on another topic mid-backoff."""
    topic, other = make_topic(), make_topic()
    make_topic(name=dlq_topic_for(topic))
    records = [(b"flaky", envelope("flaky", {"fail": 2})), *good("r", 50)]
    produce(kafka.bootstrap_servers, topic, records)
    env = {"KAFKA_CONFIG_PARTITION_ASSIGNMENT_STRATEGY": "range", **BACKOFF}
    runner = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic, **env))
    group = runner.settings.group_id

    with running(runner):
        wait_until(lambda: runner.attempts.get("flaky") == 1, what="the first failure, then a 4 s backoff")
        with group_member(kafka.bootstrap_servers, group, [other], **{"partition.assignment.strategy": "range"}):
            wait_until(
                lambda: rebalances(runner, "revoke") >= 1 and rebalances(runner, "assign") >= 2,
                what="the eager rebalance: the partition revoked and assigned again",
            )
            assert runner.attempts["flaky"] < 3, "precondition: the partition was revoked while its retry waited"
            wait_until(lambda: processed(runner) == ids_of(records), timeout=30, what="every record processed")
            wait_for_lag_0(kafka.bootstrap_servers, group, topic)

    assert runner.attempts["flaky"] == 3, "failed twice, then processed"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_partition_paused_for_a_retry_resumes_after_it_is_revoked_and_assigned_back(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], strategy: str
) -> None:
    """Both partitions wait out a backoff; a member joins (taking one) and leaves (giving it back) meanwhile."""
    topic = make_topic(2)
    make_topic(name=dlq_topic_for(topic))
    records = {p: [(f"flaky-{p}".encode(), envelope(f"flaky-{p}", {"fail": 2})), *good(f"p{p}", 25)] for p in (0, 1)}
    for partition, batch in records.items():
        produce(kafka.bootstrap_servers, topic, batch, partition=partition)
    env = {"KAFKA_CONFIG_PARTITION_ASSIGNMENT_STRATEGY": strategy, **BACKOFF}
    runner = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic, **env))
    group = runner.settings.group_id
    everything = ids_of(records[0]) | ids_of(records[1])

    with running(runner):
        wait_until(lambda: {runner.attempts.get(f"flaky-{p}") for p in (0, 1)} == {1}, what="both partitions wait")
        revokes = rebalances(runner, "revoke")
        config = {"partition.assignment.strategy": strategy}
        with group_member(kafka.bootstrap_servers, group, [topic], **config) as member:
            wait_until(lambda: len(member.partitions()) == 1, what="the second member holding one partition")
            ((_, taken),) = member.partitions()
            assert rebalances(runner, "revoke") > revokes
            assert runner.attempts[f"flaky-{taken}"] < 3, "precondition: revoked while its retry waited"
            assigns = rebalances(runner, "assign")
        wait_until(lambda: rebalances(runner, "assign") > assigns, what="the partition assigned back to the runner")
        wait_until(lambda: processed(runner) == everything, timeout=30, what="every record processed")
        wait_for_lag_0(kafka.bootstrap_servers, group, topic, 2)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_partition_paused_behind_a_dead_letter_write_resumes_after_it_is_revoked_and_assigned_back(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], strategy: str
) -> None:
    """The DLQ topic is missing at first: each partition pauses with records held behind its poison record."""
    topic = make_topic(2)
    first = {
        p: [(f"poison-{p}".encode(), envelope(f"poison-{p}", {"poison": True})), *good(f"p{p}", 5)] for p in (0, 1)
    }
    for partition, batch in first.items():
        produce(kafka.bootstrap_servers, topic, batch, partition=partition)
    env = {
        "KAFKA_CONFIG_PARTITION_ASSIGNMENT_STRATEGY": strategy,
        "MAX_PENDING_PER_PARTITION": "3",
        "DLQ_WRITE_TIMEOUT_MS": "300",
        "SHUTDOWN_GRACE_MS": "1000",  # bounds the revoke's wait for the unwritable dead-letters
    }
    runner = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic, **env))
    group = runner.settings.group_id
    later = {p: good(f"p{p}", 20, start=5) for p in (0, 1)}
    good_ids = {i for p in (0, 1) for i in ids_of(first[p]) | ids_of(later[p]) if not i.startswith("poison")}

    with running(runner):
        wait_until(lambda: len(processed(runner)) == 10, what="the good records behind both poison records")
        wait_until(lambda: write_failures(runner, topic) >= 2, what="failed dead-letter writes: both paused")
        for partition, batch in later.items():  # only a partition that flows again gets these
            produce(kafka.bootstrap_servers, topic, batch, partition=partition)
        revokes = rebalances(runner, "revoke")
        with group_member(kafka.bootstrap_servers, group, [topic], **{"partition.assignment.strategy": strategy}):
            wait_until(lambda: rebalances(runner, "revoke") > revokes, what="a partition revoked")
            assigns = rebalances(runner, "assign")
        wait_until(lambda: rebalances(runner, "assign") > assigns, what="the partition assigned back to the runner")
        kafka.create_topic(dlq_topic_for(topic))
        wait_until(lambda: processed(runner) == good_ids, timeout=30, what="every good record processed")
        wait_for_lag_0(kafka.bootstrap_servers, group, topic, 2)

    dead = read_topic(kafka.bootstrap_servers, dlq_topic_for(topic))
    assert {(r.header("dlq.original.partition"), r.header("dlq.original.offset")) for r in dead} == {
        ("0", "0"),
        ("1", "0"),
    }, "both poison records dead-lettered (a repeat after the rebalance is allowed)"


def test_max_pending_per_partition_1_resumes_once_the_dead_letter_write_is_acknowledged(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    head = [(b"poison", envelope("poison", {"poison": True})), *good("r", 1)]
    produce(kafka.bootstrap_servers, topic, head)
    env = {"MAX_PENDING_PER_PARTITION": "1", "DLQ_WRITE_TIMEOUT_MS": "300"}
    runner = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic, **env))
    group = runner.settings.group_id
    tail = good("r", 20, start=1)

    with running(runner):
        wait_until(lambda: processed(runner) == {"r-00"}, what="the record behind the poison one")
        wait_until(lambda: write_failures(runner, topic) >= 1, what="a failed dead-letter write: paused")
        produce(kafka.bootstrap_servers, topic, tail)
        kafka.create_topic(dlq_topic_for(topic))
        (dead,) = read_topic(kafka.bootstrap_servers, dlq_topic_for(topic), expect=1)
        wait_until(lambda: processed(runner) == ids_of(head[1:] + tail), timeout=20, what="the records after it")
        wait_for_lag_0(kafka.bootstrap_servers, group, topic)

    assert dead.header("dlq.original.offset") == "0"


class StallsOnce(RecordingConsumer):
    """A record with ``{"stall_s": n}`` blocks its first attempt for n seconds (past max.poll.interval.ms)."""

    def process(self, message: Message) -> None:
        stall = float(message.payload.get("stall_s", 0))
        if stall and not self.attempts.get(message.record_id):
            time.sleep(stall)  # the slow handler itself: it is what gets the member evicted
        super().process(message)


def test_a_partition_paused_for_a_retry_resumes_after_the_member_is_evicted_and_its_partitions_lost(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    """p0 waits out a 10-minute backoff; a 5 s handler on p1 exceeds max.poll.interval.ms: both lost, then assigned.

    Once lost, the retry is forgotten and the record is tried again at once by whoever owns the partition next;
    every record processed well within the backoff therefore proves the lost partition flowed again.
    """
    topic = make_topic(2)
    make_topic(name=dlq_topic_for(topic))
    flaky = [(b"flaky", envelope("flaky", {"fail": 1})), *good("p0", 10)]
    produce(kafka.bootstrap_servers, topic, flaky, partition=0)
    env = {
        "RETRY_BACKOFF_INITIAL_MS": "600000",
        "RETRY_BACKOFF_MAX_MS": "600000",
        "KAFKA_CONFIG_SESSION_TIMEOUT_MS": "2000",
        "KAFKA_CONFIG_HEARTBEAT_INTERVAL_MS": "300",
        "KAFKA_CONFIG_MAX_POLL_INTERVAL_MS": "2500",
    }
    runner = StallsOnce(settings_for(kafka.bootstrap_servers, topic, **env))
    group = runner.settings.group_id
    # The records after the slow one are fetched with it and carried over when the batch is cut: lost with it.
    slow = [(b"slow", envelope("slow", {"stall_s": 5})), *good("p1", 10)]

    with running(runner):
        wait_until(lambda: runner.attempts.get("flaky") == 1, what="p0 paused for its retry")
        produce(kafka.bootstrap_servers, topic, slow, partition=1)
        wait_until(lambda: rebalances(runner, "lost") >= 1, timeout=20, what="the partitions lost on eviction")
        wait_until(lambda: processed(runner) == ids_of(flaky + slow), timeout=30, what="every record processed")
        wait_for_lag_0(kafka.bootstrap_servers, group, topic, 2)


class GatedConsumer(RecordingConsumer):
    """A throughput-mode consumer whose records wait for ``gate``: the workers fill up to the in-flight bound."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gate = threading.Event()
        self.entered = 0

    def process(self, message: Message) -> None:
        with self.lock:
            self.entered += 1
        self.gate.wait(30)
        super().process(message)


def paused_for(runner: KafkaConsumerRunner, topic: str, reason: str) -> float:
    labels = {"topic": topic, "partition": "0", "group": runner.settings.group_id, "reason": reason}
    return runner.registry.get_sample_value("neotool_consumer_partition_paused", labels) or 0.0


def test_a_partition_paused_for_the_in_flight_bound_resumes_after_an_eager_rebalance(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    """The workers hold MAX_IN_FLIGHT records, so every partition pauses; an eager rebalance comes meanwhile."""
    topic, other = make_topic(), make_topic()
    make_topic(name=dlq_topic_for(topic))
    records = good("r", 40)
    produce(kafka.bootstrap_servers, topic, records)
    env = {
        "KAFKA_CONFIG_PARTITION_ASSIGNMENT_STRATEGY": "range",
        "MAX_CONCURRENCY": "2",
        "ORDERING": "unordered",
        "MAX_IN_FLIGHT": "4",
        "SHUTDOWN_GRACE_MS": "1000",  # the revoke waits this long for the records stuck at the gate
    }
    runner = GatedConsumer(settings_for(kafka.bootstrap_servers, topic, **env))
    group = runner.settings.group_id

    with running(runner):
        wait_until(lambda: runner.entered == 2, what="both workers waiting at the gate")
        wait_until(lambda: paused_for(runner, topic, "in_flight_limit") == 1, what="the in-flight bound pausing it")
        with group_member(kafka.bootstrap_servers, group, [other], **{"partition.assignment.strategy": "range"}):
            wait_until(
                lambda: rebalances(runner, "revoke") >= 1 and rebalances(runner, "assign") >= 2,
                what="the eager rebalance: the partition revoked and assigned again",
            )
            assert not processed(runner), "precondition: revoked while the workers held the records"
            runner.gate.set()
            wait_until(lambda: processed(runner) == ids_of(records), timeout=30, what="every record processed")
            wait_for_lag_0(kafka.bootstrap_servers, group, topic)
    assert paused_for(runner, topic, "in_flight_limit") == 0
