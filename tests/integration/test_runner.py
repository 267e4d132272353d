"""The runner against a real broker: success, retries, poison and bad bytes, commits."""

from __future__ import annotations

from collections.abc import Callable

from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.testing.harness import committed_offsets, read_topic, running, wait_until
from neotool_common.testing.kafka import KafkaEndpoint

from .runner_support import RecordingConsumer, envelope, produce, settings_for


def test_processes_in_order_and_commits(kafka: KafkaEndpoint, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    ids = [f"r-{i}" for i in range(200)]
    produce(kafka.bootstrap_servers, topic, [(i.encode(), envelope(i)) for i in ids])
    runner = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic))
    with running(runner):
        wait_until(lambda: len(runner.processed) == 200, what="all records processed")
        wait_until(
            lambda: committed_offsets(kafka.bootstrap_servers, runner.settings.group_id, topic, 1)[0] == 200,
            what="offset 200 committed",
        )
    assert [m.record_id for m in runner.processed] == ids
    first = runner.processed[0]
    assert (first.topic, first.partition, first.offset, first.key) == (topic, 0, 0, b"r-0")
    assert first.ingested_at.tzinfo is not None
    assert read_topic(kafka.bootstrap_servers, dlq_topic_for(topic)) == []


def test_retry_then_success_is_processed_once(kafka: KafkaEndpoint, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    produce(
        kafka.bootstrap_servers,
        topic,
        [(b"a", envelope("a")), (b"b", envelope("b", {"fail": 2})), (b"c", envelope("c"))],
    )
    runner = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic))
    with running(runner):
        wait_until(lambda: len(runner.processed) == 3, what="three records processed")
    assert [m.record_id for m in runner.processed] == ["a", "b", "c"], "order kept across the retry"
    assert runner.attempts["b"] == 3
    assert read_topic(kafka.bootstrap_servers, dlq_topic_for(topic)) == []


def test_poison_goes_to_dlq_at_once_with_every_header(kafka: KafkaEndpoint, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    poison = envelope("p", {"poison": True})
    produce(kafka.bootstrap_servers, topic, [(b"a", envelope("a")), (b"p", poison), (b"c", envelope("c"))])
    runner = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic))
    with running(runner):
        wait_until(lambda: len(runner.processed) == 2, what="good records processed")
        dead = read_topic(kafka.bootstrap_servers, dlq_topic_for(topic), expect=1)
        wait_until(
            lambda: committed_offsets(kafka.bootstrap_servers, runner.settings.group_id, topic, 1)[0] == 3,
            what="commit past the poison record",
        )
    assert runner.attempts["p"] == 1, "poison is never retried"
    (record,) = dead
    assert record.key == b"p"
    assert record.value == poison
    assert record.header("dlq.original.topic") == topic
    assert record.header("dlq.original.partition") == "0"
    assert record.header("dlq.original.offset") == "1"
    assert record.header("dlq.reason") == "poison"
    assert record.header("dlq.exception.type") == "neotool_common.errors.PoisonMessageError"
    assert record.header("dlq.exception.message") == "routing number fails its checksum"
    assert "PoisonMessageError" in (record.header("dlq.exception.stacktrace") or "")
    assert record.header("dlq.attempts") == "1"
    assert record.header("dlq.consumer.group") == runner.settings.group_id
    assert record.header("dlq.path") == "$.payload.routing_number"
    assert (record.header("dlq.failed_at") or "").endswith("Z")
    assert int(record.header("dlq.original.timestamp") or 0) > 0


def test_retries_exhausted_goes_to_dlq_with_attempts(kafka: KafkaEndpoint, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    produce(kafka.bootstrap_servers, topic, [(b"x", envelope("x", {"fail": 99})), (b"y", envelope("y"))])
    runner = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic, RETRY_MAX_ATTEMPTS="3"))
    with running(runner):
        wait_until(lambda: [m.record_id for m in runner.processed] == ["y"], what="the next record processed")
        (record,) = read_topic(kafka.bootstrap_servers, dlq_topic_for(topic), expect=1)
    assert runner.attempts["x"] == 3
    assert record.header("dlq.reason") == "retries_exhausted"
    assert record.header("dlq.attempts") == "3"
    assert record.header("dlq.exception.type") == "builtins.ConnectionError"
