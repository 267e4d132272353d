"""Counts over DLQ records: what failed, how, where it came from and when."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from neotool_common.dlqtool.records import DlqRecord

__all__ = ["DlqStats", "collect_stats"]

UNKNOWN = "(none)"


@dataclass
class DlqStats:
    """Totals of one pass over a DLQ. Records without a header count under ``(none)``."""

    total: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_exception_type: Counter[str] = field(default_factory=Counter)
    by_original_topic: Counter[str] = field(default_factory=Counter)
    by_path: Counter[str] = field(default_factory=Counter)  # dlq.path: which field failed, for decode/validation
    replayed_before: int = 0
    oldest_failure: datetime | None = None
    newest_failure: datetime | None = None

    def add(self, record: DlqRecord) -> None:
        self.total += 1
        self.by_reason[record.reason or UNKNOWN] += 1
        self.by_exception_type[record.exception_type or UNKNOWN] += 1
        self.by_original_topic[record.original_topic or UNKNOWN] += 1
        self.by_path[record.path or UNKNOWN] += 1
        self.replayed_before += record.replay_count > 0
        failed_at = record.failed_at_time
        if failed_at is not None:
            self.oldest_failure = min(failed_at, self.oldest_failure or failed_at)
            self.newest_failure = max(failed_at, self.newest_failure or failed_at)

    def as_json(self) -> dict[str, Any]:
        """The object ``neotool-dlq stats --json`` prints (counts sorted largest first)."""
        return {
            "total": self.total,
            "by_reason": dict(self.by_reason.most_common()),
            "by_exception_type": dict(self.by_exception_type.most_common()),
            "by_original_topic": dict(self.by_original_topic.most_common()),
            "by_path": dict(self.by_path.most_common()),
            "replayed_before": self.replayed_before,
            "oldest_failure": self.oldest_failure.isoformat() if self.oldest_failure else None,
            "newest_failure": self.newest_failure.isoformat() if self.newest_failure else None,
        }


def collect_stats(records: Iterable[DlqRecord]) -> DlqStats:
    stats = DlqStats()
    for record in records:
        stats.add(record)
    return stats
