"""Which offset of a partition may be committed, when records complete out of order.

A record is *complete* once ``process()`` returned or its dead-letter write was acknowledged. The
committable offset of a partition is the lowest offset not yet complete: everything below it is done.
Records that complete at once (the sequential path) are recorded with :meth:`PartitionOffsets.done`;
records that complete later (a dead-letter write in flight, a concurrent handler) are bracketed by
:meth:`~PartitionOffsets.begin` and :meth:`~PartitionOffsets.finish`. Records are begun in offset order.
"""

from __future__ import annotations

__all__ = ["PartitionOffsets"]


class PartitionOffsets:
    __slots__ = ("_highest_done", "_pending", "committed")

    def __init__(self) -> None:
        self._pending: dict[int, None] = {}  # insertion-ordered, so the first key is the lowest offset
        self._highest_done = -1
        self.committed = -1  # the last offset whose commit the coordinator acknowledged (or -1)

    def done(self, offset: int) -> None:
        """``offset`` completed without ever being pending."""
        self._highest_done = offset

    def begin(self, offset: int) -> None:
        """``offset`` will complete later; nothing at or above it is committable until it does."""
        self._pending[offset] = None

    def finish(self, offset: int) -> None:
        del self._pending[offset]
        self._highest_done = max(self._highest_done, offset)

    def is_pending(self, offset: int) -> bool:
        return offset in self._pending

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def highest_done(self) -> int:
        return self._highest_done

    def committable(self) -> int | None:
        """The offset to commit (the next record to read after a restart), or None if nothing completed."""
        if self._pending:
            return next(iter(self._pending))
        return self._highest_done + 1 if self._highest_done >= 0 else None

    def window(self) -> int:
        """How many offsets are held back behind the lowest pending one (for backpressure)."""
        if not self._pending:
            return 0
        return max(0, self._highest_done - next(iter(self._pending)) + 1)
