"""Helpers for testing consumers against a real broker: run a runner in a thread, read topics, wait for things."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from neotool_common.config.client_logs import CLIENT_LOG
from neotool_common.consumer_base import KafkaConsumerRunner

__all__ = ["ReadRecord", "committed_offsets", "read_topic", "running", "wait_until"]


def wait_until(condition: Callable[[], object], timeout: float = 30.0, interval: float = 0.02, what: str = "") -> None:
    """Poll ``condition`` until it is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


@contextmanager
def running(runner: KafkaConsumerRunner, join_timeout: float = 60.0) -> Iterator[KafkaConsumerRunner]:
    """Run ``runner.run()`` in a thread for the ``with`` block; stop and join it after, re-raising its error."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            runner.run()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread below
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"runner-{runner.settings.group_id}", daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        runner.stop()
        thread.join(join_timeout)
        if thread.is_alive():
            raise AssertionError(f"runner did not stop within {join_timeout}s")
        if errors:  # the runner's failure explains a test's timeout better than the timeout does
            raise errors[0]


@dataclass(frozen=True)
class ReadRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes | None]
    timestamp_ms: int

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else value.decode()


def read_topic(bootstrap: str, topic: str, expect: int | None = None, timeout: float = 30.0) -> list[ReadRecord]:
    """Every record now in ``topic`` (or wait until ``expect`` records arrived), without a consumer group commit."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "logger": CLIENT_LOG,
            "group.id": f"reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        partitions = [TopicPartition(topic, p, 0) for p in metadata.partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        consumer.assign(partitions)
        records: list[ReadRecord] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = len(records) >= expect if expect is not None else _all_read(records, ends)
            if done:
                break
            for msg in consumer.consume(500, timeout=0.2):
                if msg.error() is None:
                    records.append(_record(msg))
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def _all_read(records: list[ReadRecord], ends: Mapping[int, int]) -> bool:
    last: dict[int, int] = {}
    for record in records:
        last[record.partition] = max(last.get(record.partition, -1), record.offset)
    return all(end == 0 or last.get(partition, -1) >= end - 1 for partition, end in ends.items())


def _record(msg: Any) -> ReadRecord:
    return ReadRecord(
        msg.partition(), msg.offset(), msg.key(), msg.value(), dict(msg.headers() or []), msg.timestamp()[1]
    )


# A coordinator that is still loading (a broker that just started) answers these; asking again is the fix.
_COORDINATOR_NOT_READY = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
)


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1001 where nothing was committed)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, "logger": CLIENT_LOG}
    )
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
            except KafkaException as exc:
                if exc.args[0].code() not in _COORDINATOR_NOT_READY or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()
