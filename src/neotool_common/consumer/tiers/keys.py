"""The key-order option: which keys of a source partition have a record waiting in the tiers, in memory.

A key *waits* from the moment this process writes one of its records to a tier (from the source partition, or on
from an earlier tier) until it has handled each of the records it wrote from a tier (processed, or dead-lettered).
The records are known by their source offsets, each with the tier this process last wrote it to: a record moved
on from tier to tier is one record, and a member that reads only the tiers keeps the key waiting while any record
it moved on is still in them. While the key waits, a later record of it, read from the source or from a tier,
follows the key's *newest* waiting record below it (the highest source offset under its own) into that record's
tier, with its due time, when that tier is further on than where it was read: it sits behind that record in the
same partition of the same topic, and everything older is in the same tier or further on. (Following the
furthest tier instead would put it ahead of an older record still in an earlier tier.)

Kept in memory only and not rebuilt: a restart, or the source partition moving to another member, forgets
which keys wait, and a later record may then be processed before an earlier one still in a tier. An entry whose
records another member resolved expires once every tier it could still pass through is surely over.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass

__all__ = ["Place", "SourceKey", "Waiting", "WaitingKeys"]

SourceKey = tuple[str, int, bytes]  # source topic, source partition, record key


@dataclass(frozen=True)
class Place:
    tier: int  # the tier this process last wrote the record to
    due_ms: int  # its due time there


@dataclass
class Waiting:
    records: dict[int, Place]  # source offset -> where, of the key's records this process has not seen leave
    expires_ms: int
    # The same offsets in order: a hot key may have thousands waiting, and each of its records asks for the newest
    # below its own (a bisection, not a scan of them all).
    offsets: list[int]


class WaitingKeys:
    def __init__(self) -> None:
        self.waiting: dict[SourceKey, Waiting] = {}  # read by the gate on every record: empty is the fast path

    def __len__(self) -> int:
        return len(self.waiting)

    def leader(self, source: SourceKey, offset: int, now_ms: int) -> Place | None:
        """Where the key's newest waiting record below source ``offset`` is; None when none waits."""
        waiting = self.waiting.get(source)
        if waiting is None:
            return None
        if waiting.expires_ms <= now_ms:
            del self.waiting[source]
            return None
        index = bisect_left(waiting.offsets, offset)
        return waiting.records[waiting.offsets[index - 1]] if index else None

    def entered(self, source: SourceKey, offset: int, tier: int, due_ms: int, expires_ms: int) -> None:
        """The key's record at source ``offset`` went into ``tier`` (from the source partition or another tier)."""
        waiting = self.waiting.get(source)
        if waiting is None:
            self.waiting[source] = Waiting({offset: Place(tier, due_ms)}, expires_ms, [offset])
            return
        if offset not in waiting.records:
            insort(waiting.offsets, offset)  # most often at the end: records enter in offset order
        waiting.records[offset] = Place(tier, due_ms)
        waiting.expires_ms = max(waiting.expires_ms, expires_ms)

    def left(self, source: SourceKey, offset: int) -> None:
        """The key's record at source ``offset`` left the tiers here (processed from one, or dead-lettered)."""
        waiting = self.waiting.get(source)
        if waiting is not None and waiting.records.pop(offset, None) is not None:
            offsets = waiting.offsets
            del offsets[bisect_left(offsets, offset)]
            if not offsets:
                del self.waiting[source]
