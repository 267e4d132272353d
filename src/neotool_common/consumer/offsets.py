"""Which offset of a partition may be committed, when records complete out of order.

A record is *complete* once ``process()`` returned or its dead-letter write was acknowledged. The
committable offset of a partition is the lowest offset not yet complete: everything below it is done.
Records that complete at once (the sequential path) are recorded with :meth:`PartitionOffsets.done`;
records that complete later (a dead-letter write in flight, a concurrent handler) are bracketed by
:meth:`~PartitionOffsets.begin` and :meth:`~PartitionOffsets.finish`. Records are begun in offset order.

Offsets are not records: transaction markers and aborted batches take offsets no record is delivered for,
and compaction leaves gaps. So a partition with nothing pending may commit the client's *position* (the
offset after the last record it delivered, markers included) rather than "highest done + 1", which would
leave lag at 1 for ever behind a commit marker; and backpressure counts records held, not offset distance.
"""

from __future__ import annotations

__all__ = ["PartitionOffsets"]


class PartitionOffsets:
    __slots__ = ("_highest_done", "_pending", "_records", "committed")

    def __init__(self) -> None:
        # offset -> how many records came before it; insertion-ordered, so the first key is the lowest offset
        self._pending: dict[int, int] = {}
        self._highest_done = -1
        self._records = 0  # records delivered so far, done or begun: the sequence number of the next one
        self.committed = -1  # the last offset whose commit the coordinator acknowledged (or -1)

    def done(self, offset: int) -> None:
        """``offset`` completed without ever being pending."""
        self._highest_done = offset
        self._records += 1

    def begin(self, offset: int) -> None:
        """``offset`` will complete later; nothing at or above it is committable until it does.

        Begun again while pending (a worker's record, then its dead-letter or retry-tier write), it stays the one
        record it is: its place among the held records does not move.
        """
        pending = self._pending
        if offset not in pending:
            pending[offset] = self._records
            self._records += 1

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

    def committable(self, position: int | None = None) -> int | None:
        """The offset to commit (the next record to read after a restart), or None if nothing completed.

        ``position`` is the client's position, to be given only when every record the client delivered for
        this partition has completed (none waits in a batch, a retry or a worker).
        """
        if self._pending:
            return next(iter(self._pending))
        done = self._highest_done + 1 if self._highest_done >= 0 else None
        if position is not None and position >= 0 and (done is None or position > done):
            return position
        return done

    def held(self) -> int:
        """How many records wait behind the lowest pending one, pending or complete (for backpressure).

        Records, not offsets: gaps left by compaction or transaction markers hold nothing. Exact at every
        moment, also while writes overlap without end (a dead-letter every hundred records, each acknowledged
        after the next one went out): only what is behind the oldest write still out counts.
        """
        pending = self._pending
        return self._records - pending[next(iter(pending))] - 1 if pending else 0
