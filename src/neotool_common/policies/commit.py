"""When the runner commits: amortised by count and time, synchronous only where it must be."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CommitPolicy"]


@dataclass(frozen=True)
class CommitPolicy:
    """Commit asynchronously once ``every_records`` records completed or ``interval_s`` passed.

    Offsets are only ever those of completed records (processed, or acknowledged in the DLQ). Commits are
    synchronous on partition revoke and on shutdown, and never happen for partitions reported lost.
    Environment: ``COMMIT_EVERY_RECORDS`` (100000), ``COMMIT_INTERVAL_MS`` (1000).
    """

    every_records: int = 100_000
    interval_s: float = 1.0

    def __post_init__(self) -> None:
        if self.every_records < 1 or self.interval_s <= 0:
            raise ValueError("every_records must be >= 1 and interval_s > 0")

    def due(self, completed_since_commit: int, seconds_since_commit: float) -> bool:
        return completed_since_commit >= self.every_records or (
            completed_since_commit > 0 and seconds_since_commit >= self.interval_s
        )
