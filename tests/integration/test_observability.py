"""What an operator sees of a running consumer: /metrics, /healthz, /readyz and JSON log lines."""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.observability.logs import configure_logging, reset_logging
from neotool_common.records.message import Message
from neotool_common.testing.harness import running, wait_until
from neotool_common.testing.kafka import KafkaEndpoint, free_port

from .runner_support import RecordingConsumer, envelope, produce, settings_for

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SECRET = "s3cr3t-Pa55word-never-logged"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    yield stream
    reset_logging()


def fetch(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except urllib.error.URLError:  # the runner thread has not opened its port yet
        return 0, ""


def samples(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    _, text = fetch(port, "/metrics")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in scraped.items() if n == name and set(labels.items()) <= ls)


def test_metrics_count_exactly_what_was_processed_and_dead_lettered(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], log_stream: io.StringIO
) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    good = [(f"g{i}".encode(), envelope(f"g{i}")) for i in range(20)]
    poison = [(f"p{i}".encode(), envelope(f"p{i}", {"poison": True})) for i in range(3)]
    garbage = [(b"d0", b"{not json"), (b"d1", b"\xff\xfe")]
    produce(kafka.bootstrap_servers, topic, good[:10] + poison + garbage + good[10:])
    port = free_port()
    settings = settings_for(
        kafka.bootstrap_servers, topic, METRICS_PORT=str(port), METRICS_HOST="127.0.0.1", PROGRESS_INTERVAL_MS="200"
    )
    runner = RecordingConsumer(settings, registry=CollectorRegistry())
    with running(runner):
        wait_until(lambda: fetch(port, "/readyz")[0] == 200, what="ready")
        wait_until(lambda: value(samples(port), "neotool_consumer_dlq_messages_total") == 5, what="5 DLQ acks")
        wait_until(lambda: value(samples(port), "neotool_consumer_messages_processed_total") == 20, what="20 processed")
        scraped = samples(port)
        status, body = fetch(port, "/healthz")
    group = settings.group_id
    assert value(scraped, "neotool_consumer_messages_processed_total", topic=topic, group=group) == 20
    assert value(scraped, "neotool_consumer_dlq_messages_total", topic=topic, reason="poison") == 3
    assert value(scraped, "neotool_consumer_dlq_messages_total", topic=topic, reason="decode") == 2
    assert value(scraped, "neotool_consumer_dlq_messages_total", topic=topic, reason="validation") == 0
    assert value(scraped, "neotool_consumer_ack_latency_seconds_count", topic=topic) == 25
    assert value(scraped, "neotool_consumer_processing_seconds_count", topic=topic) == 23  # decode errors never run
    assert value(scraped, "neotool_consumer_rebalances_total", kind="assign") >= 1
    assert value(scraped, "neotool_consumer_assigned_partitions", group=group) == 1
    assert value(scraped, "neotool_consumer_ready", group=group) == 1
    assert value(scraped, "neotool_consumer_circuit_open", group=group) == 0
    assert status == 200
    assert json.loads(body)["status"] == "ok"

    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    dead = [line for line in lines if line["event"] == "dead-lettering record"]
    assert len(dead) == 5
    for line in dead:
        assert line["level"] == "warning"
        assert {"topic", "partition", "offset", "record_id", "task_name", "reason"} <= line.keys()
    assert all("batch_id" in line for line in dead if line["reason"] == "poison")
    progress = [line for line in lines if line["event"] == "progress"]
    assert progress
    assert "records_processed" in progress[-1]
    assert not [line for line in lines if line["level"] == "info" and "record_id" in line], "no INFO per record"


class WedgedConsumer(RecordingConsumer):
    """Blocks inside process() until released: the poll loop stops turning."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entered = threading.Event()
        self.release = threading.Event()

    def process(self, message: Message) -> None:
        self.entered.set()
        self.release.wait(60)
        super().process(message)


def test_healthz_turns_503_while_the_loop_is_wedged(kafka: KafkaEndpoint, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    produce(kafka.bootstrap_servers, topic, [(b"slow", envelope("slow"))])
    port = free_port()
    settings = settings_for(
        kafka.bootstrap_servers,
        topic,
        METRICS_PORT=str(port),
        METRICS_HOST="127.0.0.1",
        KAFKA_CONFIG_MAX_POLL_INTERVAL_MS="6000",
    )
    runner = WedgedConsumer(settings)
    with running(runner):
        assert runner.entered.wait(30)
        wait_until(lambda: fetch(port, "/healthz")[0] == 503, timeout=20, what="liveness to fail")
        status, body = fetch(port, "/healthz")
        runner.release.set()
        assert status == 503
        wait_until(lambda: fetch(port, "/healthz")[0] == 200, timeout=20, what="liveness to recover")
    assert json.loads(body)["status"] == "stalled"
    assert json.loads(body)["last_poll_age_s"] >= 6


def test_secrets_never_reach_logs_or_metrics(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], log_stream: io.StringIO
) -> None:
    topic = make_topic()
    port = free_port()
    settings = settings_for(
        kafka.bootstrap_servers,
        topic,
        METRICS_PORT=str(port),
        METRICS_HOST="127.0.0.1",
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_MECHANISM="PLAIN",
        KAFKA_SASL_USERNAME="svc",
        KAFKA_SASL_PASSWORD=SECRET,
    )
    runner = RecordingConsumer(settings)
    assert SECRET not in repr(settings)
    with running(runner):
        # The broker speaks PLAINTEXT, so SASL fails and the client logs connection errors.
        wait_until(
            lambda: "Kafka client error" in log_stream.getvalue() or "error" in log_stream.getvalue(),
            what="a client error logged",
        )
        _, metrics_text = fetch(port, "/metrics")
    output = log_stream.getvalue()
    assert output, "the run logged something"
    assert SECRET not in output
    assert SECRET not in metrics_text


def test_traceparent_puts_the_trace_id_in_the_log_context(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], log_stream: io.StringIO
) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    from confluent_kafka import Producer  # noqa: PLC0415

    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers})
    producer.produce(topic, key=b"t", value=envelope("t", {"poison": True}), headers=[("traceparent", TRACEPARENT)])
    assert producer.flush(10) == 0
    runner = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic))
    with running(runner):
        wait_until(lambda: "dead-lettering record" in log_stream.getvalue(), what="the DLQ log line")
    (line,) = [json.loads(x) for x in log_stream.getvalue().splitlines() if "dead-lettering record" in x]
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_source_topic_that_does_not_exist_keeps_readyz_not_ready_with_the_reason_until_it_appears(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    topic = f"t.not-yet-created.{uuid.uuid4().hex[:8]}"
    runner = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic, METRICS_PORT=str(free_port())))
    port = runner.settings.metrics_port

    with running(runner):
        wait_until(lambda: runner.health.readiness().missing_topics == (topic,), what="the missing topic noticed")
        status, body = fetch(port, "/readyz")
        assert status == 503
        assert json.loads(body)["reason"] == f"source topics do not exist: {topic}"
        make_topic(name=topic)
        make_topic(name=dlq_topic_for(topic))
        produce(kafka.bootstrap_servers, topic, [(b"r-1", envelope("r-1"))])
        wait_until(lambda: fetch(port, "/readyz")[0] == 200, timeout=30, what="ready once the topic exists")
        wait_until(lambda: [m.record_id for m in runner.processed] == ["r-1"], timeout=30, what="its record")
