"""A batch's state for one consumer group: the answer ``neotool-batch status`` prints and announcements carry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from neotool_common.batches.manifest import announcement_key

__all__ = ["BatchState", "BatchSummary", "PartitionProgress"]


class BatchState(StrEnum):
    """``open`` until every record is settled, ``overdue`` when that takes longer than ``BATCH_OVERDUE_MS``."""

    OPEN = "open"
    COMPLETE = "complete"
    COMPLETE_WITH_REJECTS = "complete_with_rejects"
    OVERDUE = "overdue"

    @property
    def settled(self) -> bool:
        return self in (BatchState.COMPLETE, BatchState.COMPLETE_WITH_REJECTS)


@dataclass(frozen=True)
class PartitionProgress:
    """One partition's share: its records, the group's committed offset there, how many are settled."""

    partition: int
    records: int
    first_offset: int
    last_offset: int
    committed: int | None
    settled: int

    @property
    def pending(self) -> int:
        return self.records - self.settled

    def as_json(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "records": self.records,
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "committed": self.committed,
            "settled": self.settled,
            "pending": self.pending,
        }


@dataclass(frozen=True)
class BatchSummary:
    """``expected`` = ``processed`` + ``rejected`` + ``pending`` always; ``duplicates`` are counted apart.

    ``rejected_by_reason`` sums to ``rejected``. ``in_retry``, ``spooled`` and ``lost`` are parts of ``pending``:
    records waiting in a retry topic, in a producer's spool, or lost by the producer (never on the topic).
    """

    batch_id: str
    topic: str
    group: str
    state: BatchState
    expected: int
    processed: int
    rejected: int
    pending: int
    duplicates: int
    rejected_by_reason: Mapping[str, int] = field(default_factory=dict)
    in_retry: int = 0
    spooled: int = 0
    lost: int = 0
    parts_declared: int = 1
    parts_expected: int = 1
    partitions: tuple[PartitionProgress, ...] = ()
    published_at: str = ""
    age_ms: int = 0

    @property
    def settled(self) -> int:
        return self.processed + self.rejected

    @property
    def idempotency_key(self) -> str:
        return announcement_key(self.batch_id, self.group)

    @property
    def holding_back(self) -> tuple[int, ...]:
        """Partitions with records the group has not settled yet."""
        return tuple(p.partition for p in self.partitions if p.pending > 0)

    @property
    def adds_up(self) -> bool:
        return self.processed + self.rejected + self.pending == self.expected and self.pending >= 0

    def as_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "topic": self.topic,
            "group": self.group,
            "state": self.state.value,
            "expected": self.expected,
            "records_processed": self.processed,
            "rejected": self.rejected,
            "rejected_by_reason": dict(sorted(self.rejected_by_reason.items())),
            "pending": self.pending,
            "in_retry": self.in_retry,
            "spooled": self.spooled,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "parts": {"declared": self.parts_declared, "expected": self.parts_expected},
            "partitions": [p.as_json() for p in self.partitions],
            "holding_back": list(self.holding_back),
            "published_at": self.published_at,
            "age_ms": self.age_ms,
            "idempotency_key": self.idempotency_key,
        }
