"""Helpers for tests on a secured cluster: the harness's readers, with a client configuration (a login).

:func:`read_topic_as` and :func:`committed_offsets_as` do what :mod:`.harness`'s ``read_topic`` and
``committed_offsets`` do, over any librdkafka settings (``secured_kafka.client_config()`` for the admin).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from neotool_common.testing.harness import ReadRecord

__all__ = ["committed_offsets_as", "read_topic_as"]


def read_topic_as(
    config: Mapping[str, Any], topic: str, expect: int | None = None, timeout: float = 30.0
) -> list[ReadRecord]:
    """Every record in ``topic`` up to its end now (or until ``expect`` records arrived), committing nothing."""
    consumer = Consumer(
        {**config, "group.id": f"reader-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False, "log_level": 3}
    )
    try:
        partitions = [
            TopicPartition(topic, p, 0) for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        wanted = sum(ends.values()) if expect is None else expect
        consumer.assign(partitions)
        records: list[ReadRecord] = []
        deadline = time.monotonic() + timeout
        while len(records) < wanted and time.monotonic() < deadline:
            records += [_record(msg) for msg in consumer.consume(500, timeout=0.2) if msg.error() is None]
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def _record(msg: Any) -> ReadRecord:
    headers = dict(msg.headers() or [])
    return ReadRecord(msg.partition(), msg.offset(), msg.key(), msg.value(), headers, msg.timestamp()[1])


def committed_offsets_as(config: Mapping[str, Any], group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1001 where nothing was committed)."""
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False, "log_level": 3})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()
