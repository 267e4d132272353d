"""Read a DLQ without disturbing anything: ``assign()`` explicit ranges, no group, no commits, bounded.

The ranges come from a watermark snapshot taken before reading, so a read always ends, even on a busy
topic or one whose last offsets are transaction markers that are never delivered (end of partition counts
as done).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from neotool_common.dlqtool.cluster import OffsetRange
from neotool_common.dlqtool.records import DlqRecord, parse_record
from neotool_common.errors import ConfigurationError

__all__ = ["read_range"]

_BATCH = 500


def read_range(
    consumer: Any,
    topic: str,
    ranges: Mapping[int, OffsetRange],
    idle_timeout_s: float = 15.0,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[DlqRecord]:
    """Every record of ``topic`` within ``ranges``, partition by partition in offset order.

    Blocks on the network; raises :class:`ConfigurationError` when no record or end-of-partition arrives
    for ``idle_timeout_s`` (the cluster went away). The consumer is left assigned; the caller closes it.
    """
    pending = {partition: r for partition, r in ranges.items() if len(r) > 0}
    if not pending:
        return
    consumer.assign([TopicPartition(topic, partition, r.start) for partition, r in pending.items()])
    last_progress = clock()
    while pending:
        messages = consumer.consume(num_messages=_BATCH, timeout=0.5)
        if messages:
            last_progress = clock()
        elif clock() - last_progress > idle_timeout_s:
            raise ConfigurationError("KAFKA_BROKERS", f"no data from {topic} for {idle_timeout_s:g}s while reading")
        for message in messages:
            record = _accept(message, pending)
            if record is not None:
                yield record


def _accept(message: Any, pending: dict[int, OffsetRange]) -> DlqRecord | None:
    """The record in ``message`` if it is inside its range; updates ``pending`` as partitions finish."""
    partition = message.partition()
    if partition not in pending:
        return None
    error = message.error()
    if error is not None:
        if error.code() == KafkaError._PARTITION_EOF:
            del pending[partition]
            return None
        if error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
            return None  # the reader's group.id is never used (assign only): no ACL on it is needed
        raise ConfigurationError(message.topic() or "DLQ_TOPIC", f"cannot read partition {partition}: {error.str()}")
    end = pending[partition].end
    if message.offset() >= end:
        del pending[partition]
        return None
    if message.offset() >= end - 1:
        del pending[partition]
    return parse_record(message)
