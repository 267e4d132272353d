"""What the runner knows about one assigned partition."""

from __future__ import annotations

from datetime import datetime

from confluent_kafka import TopicPartition

from neotool_common.consumer.offsets import PartitionOffsets
from neotool_common.observability.metrics import TopicMetrics

__all__ = ["PartitionState"]


class PartitionState:
    """Offsets, retry bookkeeping and per-batch counters of one assigned partition.

    A partition is *blocked* while one of its records waits out a retry backoff: the partition is paused
    (:class:`~neotool_common.consumer.flow.PauseReason` ``RETRY_BACKOFF``) and sought back to that record,
    so records fetched after it are dropped until it succeeds or is dead-lettered.
    """

    __slots__ = (
        "blocked",
        "commit_sent",
        "key",
        "last_ingested_at",
        "metrics",
        "offsets",
        "partition",
        "processed_unflushed",
        "resume_at",
        "retry_attempts",
        "retry_offset",
        "topic",
        "tp",
    )

    def __init__(self, topic: str, partition: int, metrics: TopicMetrics) -> None:
        self.topic = topic
        self.partition = partition
        self.key = (topic, partition)
        self.tp = TopicPartition(topic, partition)
        self.metrics = metrics
        self.offsets = PartitionOffsets()
        self.commit_sent = -1
        self.blocked = False
        self.resume_at = 0.0
        self.retry_offset = -1
        self.retry_attempts = 0
        self.processed_unflushed = 0
        self.last_ingested_at: datetime | None = None

    def attempt_of(self, offset: int) -> int:
        """The attempt number a delivery of ``offset`` is (1 unless it is being retried)."""
        return self.retry_attempts + 1 if offset == self.retry_offset else 1

    def clear_retry(self) -> None:
        self.retry_offset = -1
        self.retry_attempts = 0
