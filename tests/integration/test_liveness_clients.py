"""Liveness (issue 12): lag tells the truth, a failed consumer exits non-zero, a dead-letter outlives retention.

Each test asserts safety (every record produced is processed, dead-lettered, or — where the runner must fail —
left uncommitted) and liveness (the group's committed offset reaches the end offset, or the runner ends with
the documented exit code, within a bounded wait).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from neotool_common import Message, dlq_topic_for
from neotool_common.testing.harness import committed_offsets, read_topic, running, wait_until
from neotool_common.testing.kafka import KafkaEndpoint
from neotool_common.testing.logs import capture_logs

from .liveness_support import ExitCode, end_offsets, group_member, wait_for_lag_0
from .runner_support import RecordingConsumer, envelope, produce, settings_for

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
EXIT_FAILED = 1
NO_COMMIT = -1001


def test_a_transactional_topic_with_an_aborted_transaction_is_committed_to_its_end_offset(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    """Commit markers and aborted batches take offsets: 10 + marker, 10 aborted + marker, 10 + marker = 33."""
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "transactional.id": f"tx-{uuid.uuid4().hex}"})
    producer.init_transactions(30)
    written: dict[str, list[str]] = {}
    for name, commit in (("first", True), ("aborted", False), ("second", True)):
        written[name] = [f"{name}-{i}" for i in range(10)]
        producer.begin_transaction()
        for record_id in written[name]:
            producer.produce(topic, key=record_id.encode(), value=envelope(record_id), partition=0)
        producer.flush(30)
        (producer.commit_transaction if commit else producer.abort_transaction)(30)
    # the coordinator writes the last commit marker after commit_transaction() returns: await it
    wait_until(lambda: end_offsets(kafka.bootstrap_servers, topic, 1) == {0: 33}, what="markers take offsets")
    runner = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic))

    with running(runner):
        wait_until(lambda: len(runner.processed) == 20, what="the 20 committed records")
        wait_for_lag_0(kafka.bootstrap_servers, runner.settings.group_id, topic)

    assert [m.record_id for m in runner.processed] == written["first"] + written["second"], "never the aborted ones"


def test_a_static_member_fenced_by_a_newer_one_with_its_instance_id_exits_1_naming_the_cause(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    instance = f"pod-{uuid.uuid4().hex[:8]}"
    records = [(f"r-{i}".encode(), envelope(f"r-{i}")) for i in range(10)]
    produce(kafka.bootstrap_servers, topic, records)
    runner = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic, KAFKA_CONFIG_GROUP_INSTANCE_ID=instance))
    group = runner.settings.group_id

    with capture_logs() as events, ExitCode(runner) as exit_code:
        wait_until(lambda: len(runner.processed) == 10, what="every record processed")
        wait_for_lag_0(kafka.bootstrap_servers, group, topic)
        config = {"group.instance.id": instance, "partition.assignment.strategy": "cooperative-sticky"}
        with group_member(kafka.bootstrap_servers, group, [topic], **config) as newer:
            wait_until(newer.partitions, what="the newer member taking the partition over")
            code = exit_code.wait(20, "it was fenced", events)
            assert not newer.errors, f"the newer member is the one that stays: {newer.errors}"

    assert code == EXIT_FAILED
    errors = [e for e in events if e["level"] in ("error", "critical")]
    assert len(errors) == 1, f"one ERROR line, got {errors}"
    assert "fenc" in json.dumps(errors[0], default=str).lower(), f"the ERROR line names the fencing: {errors[0]}"
    assert [m.record_id for m in runner.processed] == [f"r-{i}" for i in range(10)]
    assert committed_offsets(kafka.bootstrap_servers, group, topic, 1) == {0: 10}, "nothing lost or undone"


def test_a_dead_lettered_record_is_stamped_with_the_time_it_was_dead_lettered(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    """A 30-day-old record dead-lettered now must not be due for the DLQ topic's retention at once."""
    keep = {"retention.ms": "-1"}  # the broker itself must not delete the old source record during the test
    topic = make_topic(config=keep)
    make_topic(name=dlq_topic_for(topic), config=keep)
    produced_ms = int((time.time() - timedelta(days=30).total_seconds()) * 1000)
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "acks": "all"})
    producer.produce(topic, key=b"old", value=envelope("old", {"poison": True}), timestamp=produced_ms, partition=0)
    producer.produce(topic, key=b"next", value=envelope("next"), partition=0)
    assert producer.flush(30) == 0
    runner = RecordingConsumer(settings_for(kafka.bootstrap_servers, topic))

    before_ms = int(time.time() * 1000)
    with running(runner):
        (dead,) = read_topic(kafka.bootstrap_servers, dlq_topic_for(topic), expect=1)
        wait_for_lag_0(kafka.bootstrap_servers, runner.settings.group_id, topic)
    after_ms = int(time.time() * 1000)

    assert [m.record_id for m in runner.processed] == ["next"]
    assert (dead.key, dead.header("dlq.original.offset")) == (b"old", "0")
    assert before_ms - 1000 <= dead.timestamp_ms <= after_ms + 1000, (
        f"the DLQ copy is stamped {(before_ms - dead.timestamp_ms) / 86_400_000:.1f} days before it was written"
    )
    assert dead.header("dlq.original.timestamp") == str(produced_ms), "the source timestamp is kept in the header"


def returns_the_coroutine(fn: Callable[[Any, Message], Awaitable[None]]) -> Callable[[Any, Message], Any]:
    """A decorator as people write them: a plain ``def`` around an ``async def``, returning its coroutine."""

    def inner(self: Any, message: Message) -> Any:
        return fn(self, message)

    return inner


class AwaitableReturningConsumer(RecordingConsumer):
    @returns_the_coroutine
    async def process(self, message: Message) -> None:  # type: ignore[override]
        self.processed.append(message)


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_a_plain_process_returning_an_awaitable_stops_the_runner_with_exit_1_and_commits_nothing(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    produce(kafka.bootstrap_servers, topic, [(f"r-{i}".encode(), envelope(f"r-{i}")) for i in range(5)])
    runner = AwaitableReturningConsumer(settings_for(kafka.bootstrap_servers, topic))

    with capture_logs() as events, ExitCode(runner) as exit_code:
        code = exit_code.wait(20, "process() returned an awaitable", events)

    assert code == EXIT_FAILED
    assert runner.processed == [], "the coroutine never ran"
    errors = [e for e in events if e["level"] in ("error", "critical")]
    assert any("awaitable" in json.dumps(e, default=str) for e in errors), f"an ERROR line says why: {errors}"
    committed = committed_offsets(kafka.bootstrap_servers, runner.settings.group_id, topic, 1)
    assert committed == {0: NO_COMMIT}, "a record whose process() did not run is not committed"


def test_a_static_member_with_the_default_settings_prints_no_librdkafka_confwarn(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    """The consumer's settings (assignor, group.instance.id, session timeout) must not reach the DLQ producer."""
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    ids = [f"r-{i}" for i in range(10)]
    produce(kafka.bootstrap_servers, topic, [(i.encode(), envelope(i)) for i in ids])
    group = f"confwarn-{uuid.uuid4().hex[:8]}"
    handled, output = tmp_path / "handled", tmp_path / "output"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),  # the code under test, not another checkout's
        "PYTHONDONTWRITEBYTECODE": "1",
        "KAFKA_BROKERS": kafka.bootstrap_servers,
        "KAFKA_TOPICS": topic,
        "KAFKA_GROUP_ID": group,
        "KAFKA_CONFIG_GROUP_INSTANCE_ID": f"pod-{uuid.uuid4().hex[:8]}",
        "KAFKA_CONFIG_SESSION_TIMEOUT_MS": "6000",
        "METRICS_PORT": "0",
        "COMMIT_INTERVAL_MS": "100",
        "SHUTDOWN_GRACE_MS": "5000",
        "HANDLED_FILE": str(handled),
    }
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.process_consumer"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
        )
    try:
        wait_for_lag_0(kafka.bootstrap_servers, group, topic)
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    text = output.read_text(errors="replace")

    assert code == 0, text[-3000:]
    assert handled.read_text().splitlines() == ids
    confwarn = [line for line in text.splitlines() if "CONFWARN" in line]
    assert not confwarn, "librdkafka warned about settings given to the wrong client:\n" + "\n".join(confwarn)
