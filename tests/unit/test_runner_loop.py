"""The runner's poll loop against an in-memory consumer: commit retries, slow batches, rebalances mid-batch."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.errors import PoisonMessageError
from neotool_common.records.message import Message
from neotool_common.testing.fakes import FakeConsumer, FakeProducer, UndecodableHeaderName
from neotool_common.testing.harness import running, wait_until
from neotool_common.testing.logs import capture_logs

TOPIC = "bank.v1"
BATCH_ID = str(uuid.uuid4())


def values(count: int) -> list[bytes]:
    return [
        json.dumps(
            {"batch_id": BATCH_ID, "record_id": f"r-{i}", "ingested_at": "2024-05-01T12:00:00Z", "payload": {}}
        ).encode()
        for i in range(count)
    ]


class Recorder(KafkaConsumerRunner):
    """Records (partition, offset) of each processed record and how many polls had happened by then."""

    def __init__(
        self,
        partitions: dict[int, list[bytes]],
        work_s: float = 0.0,
        prepare: Callable[[FakeConsumer], None] = lambda fake: None,
        **env: str,
    ) -> None:
        self.processed: list[tuple[int, int]] = []
        self.polls_seen: list[int] = []
        self.work_s = work_s
        self.on_process: Callable[[Message], None] = lambda message: None
        self.fake: FakeConsumer | None = None

        def consumer(config: dict[str, Any]) -> FakeConsumer:
            self.fake = FakeConsumer(config, TOPIC, partitions)
            prepare(self.fake)
            return self.fake

        settings = RunnerSettings.from_env(
            {"KAFKA_BROKERS": "127.0.0.1:9", "KAFKA_TOPICS": TOPIC, "KAFKA_GROUP_ID": "g", "METRICS_PORT": "0", **env}
        )
        self.producer = FakeProducer({})
        super().__init__(
            settings, registry=CollectorRegistry(), consumer_factory=consumer, producer_factory=lambda _: self.producer
        )

    def process(self, message: Message) -> None:
        if self.work_s:
            time.sleep(self.work_s)  # the work of a slow consumer
        assert self.fake is not None
        self.polls_seen.append(self.fake.consume_calls)
        self.processed.append((message.partition, message.offset))
        self.on_process(message)

    @property
    def consumer(self) -> FakeConsumer:
        """The fake the runner made; a test that looks right after starting the runner waits for it."""
        wait_until(lambda: self.fake is not None, timeout=30, what="the runner made its consumer")
        assert self.fake is not None
        return self.fake


def test_a_failed_commit_is_sent_again_although_no_record_completes_any_more() -> None:
    def fail_first(fake: FakeConsumer) -> None:
        fake.fail_next_commits = 1

    runner = Recorder({0: values(3)}, prepare=fail_first, COMMIT_INTERVAL_MS="10")
    with running(runner):
        wait_until(lambda: runner.processed == [(0, 0), (0, 1), (0, 2)], what="three records processed")
        wait_until(lambda: runner.consumer.committed == {0: 3}, timeout=5, what="the commit sent again")
        failures = runner.registry.get_sample_value("neotool_consumer_commit_failures_total", {"group": "g"})
    assert failures == 1
    assert runner.consumer.commit_calls[0] == {0: 3}, "the first commit already covered everything and failed"


def test_a_slow_batch_is_cut_so_that_polls_and_commits_happen_between_records() -> None:
    runner = Recorder({0: values(20)}, work_s=0.003, COMMIT_INTERVAL_MS="1")
    with running(runner):
        wait_until(lambda: len(runner.processed) == 20, what="every record processed")
        wait_until(lambda: runner.consumer.committed == {0: 20}, what="the final commit")
    assert runner.processed == [(0, offset) for offset in range(20)], "once each, in order"
    assert len(set(runner.polls_seen)) >= 10, "consume() was called between the records of one fetch"
    assert len(runner.consumer.commit_calls) >= 5, "commits while the fetch was being worked through"


def test_records_carried_over_from_a_revoked_partition_are_dropped_and_fetched_again_from_the_commit() -> None:
    runner = Recorder({0: values(10), 1: values(10)}, work_s=0.003, COMMIT_INTERVAL_MS="1")

    def revoke_and_reassign_partition_0(message: Message) -> None:
        if (message.partition, message.offset) == (0, 3):
            runner.consumer.rebalance(revoke=[0], assign=[0])

    runner.on_process = revoke_and_reassign_partition_0
    with running(runner):
        wait_until(lambda: len(runner.processed) >= 20, what="both partitions processed")
        wait_until(lambda: runner.consumer.committed == {0: 10, 1: 10}, what="the final commits")
    for partition in (0, 1):
        offsets = [offset for p, offset in runner.processed if p == partition]
        assert offsets == list(range(10)), f"partition {partition}: once each, in order"
    revokes = runner.registry.get_sample_value("neotool_consumer_rebalances_total", {"group": "g", "kind": "revoke"})
    assert revokes == 2, "the one in the middle of the stream, and the one of close()"


def test_a_header_name_that_is_not_utf8_is_a_decode_failure_dead_lettered_without_its_headers() -> None:
    def spoil_offset_1(fake: FakeConsumer) -> None:
        good = fake.log[0][1]
        fake.log[0][1] = UndecodableHeaderName(good.topic(), 0, 1, good.value())

    runner = Recorder({0: values(3)}, prepare=spoil_offset_1, COMMIT_INTERVAL_MS="10")
    with running(runner):
        wait_until(lambda: runner.consumer.committed == {0: 3}, what="the commit past every record")
    assert runner.processed == [(0, 0), (0, 2)], "never passed to process()"
    ((topic, value, headers),) = runner.producer.produced
    assert (topic, value) == (TOPIC + ".dlq", runner.consumer.log[0][1].value())
    assert (headers["dlq.reason"], headers["dlq.path"], headers["dlq.attempts"]) == (b"decode", b"$headers", b"1")
    assert not [name for name in headers if not name.startswith("dlq.")], "the unreadable headers are not copied"


class Redacting(Recorder):
    """Its failures echo an e-mail address; redact_failure() masks it before it reaches the DLQ or the log."""

    def process(self, message: Message) -> None:
        if message.offset == 1:
            raise PoisonMessageError(f"no such customer jane.doe@example.com (record {message.record_id})")
        super().process(message)

    def redact_failure(self, text: str) -> str:
        return re.sub(r"[\w.]+@[\w.]+", "<email>", text)


def test_redact_failure_masks_what_the_dlq_headers_and_the_log_line_say_of_the_exception() -> None:
    runner = Redacting({0: values(3)}, COMMIT_INTERVAL_MS="10")
    with capture_logs() as events, running(runner):
        wait_until(lambda: runner.consumer.committed == {0: 3}, what="the commit past every record")
    ((_, _, headers),) = runner.producer.produced
    assert headers["dlq.exception.message"] == b"no such customer <email> (record r-1)"
    trace = headers["dlq.exception.stacktrace"] or b""
    assert b"<email>" in trace
    assert b"jane.doe" not in trace
    (line,) = [e for e in events if e["event"] == "dead-lettering record"]
    assert line["error"] == "no such customer <email> (record r-1)"
