"""The key-order option: which keys of a source partition have a record waiting in the tiers, in memory.

A key *waits* from the moment this process writes one of its records to a tier (from the source partition, or on
from an earlier tier) until it has handled each of the records it wrote from a tier (processed, or dead-lettered):
the records are known by their source offsets, so a record moved on from tier to tier is one record, and a
member that reads only the tiers keeps the key waiting while any record it moved on is still in them. While it
waits, its later records from the source, and those read from an earlier tier than the key's latest, follow it
into that tier with its due time (so they sit behind it in the same partition of the same topic: one key, one
partition).

Kept in memory only and not rebuilt: a restart, or the source partition moving to another member, forgets
which keys wait, and a later record may then be processed before an earlier one still in a tier. An entry whose
records another member resolved expires once every tier it could still pass through is surely over.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Waiting", "WaitingKeys"]

SourceKey = tuple[str, int, bytes]  # source topic, source partition, record key


@dataclass
class Waiting:
    offsets: set[int]  # source offsets of the key's records this process wrote to a tier and has not seen leave
    tier: int  # the latest tier one of them entered
    due_ms: int  # that record's due time
    expires_ms: int

    @property
    def records(self) -> int:
        return len(self.offsets)


class WaitingKeys:
    def __init__(self) -> None:
        self.waiting: dict[SourceKey, Waiting] = {}  # read by the gate on every record: empty is the fast path

    def __len__(self) -> int:
        return len(self.waiting)

    def leader(self, source: SourceKey, now_ms: int) -> Waiting | None:
        waiting = self.waiting.get(source)
        if waiting is not None and waiting.expires_ms <= now_ms:
            del self.waiting[source]
            return None
        return waiting

    def entered(self, source: SourceKey, offset: int, tier: int, due_ms: int, expires_ms: int) -> None:
        """The key's record at source ``offset`` went into ``tier`` (from the source partition or another tier)."""
        waiting = self.waiting.get(source)
        if waiting is None:
            self.waiting[source] = Waiting({offset}, tier, due_ms, expires_ms)
            return
        waiting.offsets.add(offset)
        if tier >= waiting.tier:
            waiting.tier, waiting.due_ms = tier, max(due_ms, waiting.due_ms)
        waiting.expires_ms = max(waiting.expires_ms, expires_ms)

    def left(self, source: SourceKey, offset: int) -> None:
        """The key's record at source ``offset`` left the tiers here (processed from one, or dead-lettered)."""
        waiting = self.waiting.get(source)
        if waiting is not None:
            waiting.offsets.discard(offset)
            if not waiting.offsets:
                del self.waiting[source]
