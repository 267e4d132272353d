"""What became of each record of one part of a batch, from the producer's delivery reports."""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import UTC, datetime

from neotool_common.batches.manifest import BatchManifest, PartitionSpan, runs_of

__all__ = ["BatchTracker"]


class BatchTracker:
    """Counts sent records and their outcomes; thread-safe (delivery reports come on any thread).

    The producer calls :meth:`sent` before queueing a record and exactly one of :meth:`acknowledged` or
    :meth:`failed` when its outcome is final; :meth:`manifest` turns the outcomes into the part's manifest.
    """

    def __init__(self, batch_id: str, topic: str, part: str, expected_parts: int, producer: str) -> None:
        if expected_parts < 1:
            raise ValueError(f"expected_parts must be 1 or more, got {expected_parts}")
        self.batch_id, self.topic, self.part = batch_id, topic, part
        self.expected_parts, self.producer = expected_parts, producer
        self._lock = threading.Lock()
        self._offsets: dict[int, list[int]] = defaultdict(list)
        self._sent = 0
        self._spooled = 0
        self._lost = 0

    def sent(self) -> None:
        with self._lock:
            self._sent += 1

    def unsent(self) -> None:
        """A record :meth:`sent` was never queued (the caller saw why)."""
        with self._lock:
            self._sent -= 1

    def acknowledged(self, partition: int, offset: int) -> None:
        with self._lock:
            self._offsets[partition].append(offset)

    def failed(self, spooled: bool) -> None:
        with self._lock:
            if spooled:
                self._spooled += 1
            else:
                self._lost += 1

    @property
    def pending(self) -> int:
        """Records sent whose outcome is not known yet."""
        with self._lock:
            answered = sum(len(offsets) for offsets in self._offsets.values()) + self._spooled + self._lost
            return self._sent - answered

    def abandon_pending(self) -> int:
        """Count records still unanswered as lost (the caller gave up waiting); returns how many."""
        pending = self.pending
        with self._lock:
            self._lost += pending
        return pending

    def manifest(self, published_at: datetime) -> BatchManifest:
        with self._lock:
            spans = tuple(PartitionSpan(p, runs_of(offsets)) for p, offsets in sorted(self._offsets.items()))
            spooled, lost = self._spooled, self._lost
        moment = published_at.astimezone(UTC)
        return BatchManifest(
            batch_id=self.batch_id,
            topic=self.topic,
            part=self.part,
            expected_parts=self.expected_parts,
            partitions=spans,
            spooled=spooled,
            lost=lost,
            producer=self.producer,
            published_at=moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            published_at_ms=int(moment.timestamp() * 1000),
        )
