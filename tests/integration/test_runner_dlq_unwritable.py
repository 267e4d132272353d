"""A dead-letter topic that does not exist (auto-create is off): writes fail and are re-sent, commits wait."""

from __future__ import annotations

import time
from collections.abc import Callable

from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.testing.harness import committed_offsets, read_topic, running, wait_until
from neotool_common.testing.kafka import KafkaEndpoint
from neotool_common.testing.logs import capture_logs

from .runner_support import RecordingConsumer, envelope, produce, settings_for

POISON_OFFSET = 1
GOOD = ["a", "b", "c", "d", "e", "f"]


def produce_with_poison(kafka: KafkaEndpoint, topic: str) -> None:
    records = [(b"a", envelope("a")), (b"p", envelope("p", {"poison": True}))]
    records += [(i.encode(), envelope(i)) for i in GOOD[1:]]
    produce(kafka.bootstrap_servers, topic, records)


def write_failures(runner: RecordingConsumer, topic: str) -> float:
    labels = {"topic": topic, "group": runner.settings.group_id}
    return runner.registry.get_sample_value("neotool_consumer_dlq_write_failures_total", labels) or 0.0


def test_commits_wait_at_the_poison_record_until_the_dlq_topic_exists_then_move_past_it(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    produce_with_poison(kafka, topic)
    runner = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic, DLQ_WRITE_TIMEOUT_MS="300"))
    group = runner.settings.group_id

    def committed() -> int:
        return committed_offsets(kafka.bootstrap_servers, group, topic, 1)[0]

    with capture_logs() as events, running(runner):
        wait_until(lambda: len(runner.processed) == len(GOOD), what="the good records, after the poison one too")
        wait_until(lambda: committed() == POISON_OFFSET, what="the commit up to the poison record")
        wait_until(lambda: write_failures(runner, topic) >= 2, what="a re-sent write failing again")
        assert committed() == POISON_OFFSET, "nothing committed past the record whose DLQ write failed"
        assert runner.registry.get_sample_value("neotool_consumer_dlq_pending", {"group": group}) == 1

        kafka.create_topic(dlq_topic_for(topic))
        (dead,) = read_topic(kafka.bootstrap_servers, dlq_topic_for(topic), expect=1)
        wait_until(lambda: committed() == len(GOOD) + 1, what="the commit past every record")

    assert [m.record_id for m in runner.processed] == GOOD, "every good record once, in order"
    assert runner.attempts["p"] == 1, "a failed DLQ write is re-sent, the record is not processed again"
    assert (dead.key, dead.header("dlq.reason"), dead.header("dlq.original.offset")) == (b"p", "poison", "1")
    assert len(read_topic(kafka.bootstrap_servers, dlq_topic_for(topic))) == 1, "written once"
    labels = {"topic": topic, "group": group, "reason": "poison"}
    assert runner.registry.get_sample_value("neotool_consumer_dlq_messages_total", labels) == 1
    warnings = [e for e in events if e.get("dlq_topic") == dlq_topic_for(topic) and e["level"] == "warning"]
    assert any("does not exist" in e["event"] for e in warnings), "the missing topic is reported at start"
    assert any("write failed" in e["event"] for e in warnings)


def test_stopping_with_an_unwritable_dlq_takes_the_grace_period_and_the_next_run_loses_nothing(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    produce_with_poison(kafka, topic)
    grace_s = 1.5
    env = {"DLQ_WRITE_TIMEOUT_MS": "300", "SHUTDOWN_GRACE_MS": str(int(grace_s * 1000))}
    first = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic, **env))
    group = first.settings.group_id

    with running(first):
        wait_until(lambda: len(first.processed) == len(GOOD), what="the good records processed")
        wait_until(lambda: write_failures(first, topic) >= 1, what="a failed DLQ write")
        stopping = time.monotonic()
    stopped_after = time.monotonic() - stopping
    assert stopped_after < 1.5 * grace_s, f"stopped {stopped_after:.1f}s after stop(); grace is {grace_s}s"
    assert committed_offsets(kafka.bootstrap_servers, group, topic, 1)[0] == POISON_OFFSET

    kafka.create_topic(dlq_topic_for(topic))
    second = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic, group, **env))
    with running(second):
        wait_until(
            lambda: committed_offsets(kafka.bootstrap_servers, group, topic, 1)[0] == len(GOOD) + 1,
            what="the commit past every record",
        )
    (dead,) = read_topic(kafka.bootstrap_servers, dlq_topic_for(topic))
    assert dead.header("dlq.original.offset") == str(POISON_OFFSET)
    assert [m.record_id for m in second.processed] == GOOD[1:], "redelivered from the poison record on"
