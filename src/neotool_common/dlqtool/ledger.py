"""Which DLQ offsets a replay may commit: only past records whose fate is settled, in offset order.

A record is settled when it was skipped or reported (nothing to send) or when the broker acknowledged its
copy. One unsettled or failed record holds back the commit of its partition, so a crash never commits past
a record that was not written; what a re-run sends again is at most what was in flight.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

__all__ = ["CommitLedger"]


class _State(Enum):
    PENDING = "pending"
    SETTLED = "settled"
    FAILED = "failed"


@dataclass
class _Entry:
    offset: int
    state: _State = _State.PENDING


@dataclass
class CommitLedger:
    """Per-partition queue of offsets in the order they were read, and the offsets safe to commit."""

    _queues: dict[int, deque[_Entry]] = field(default_factory=dict)
    _entries: dict[tuple[int, int], _Entry] = field(default_factory=dict)
    _committable: dict[int, int] = field(default_factory=dict)

    def track(self, partition: int, offset: int) -> None:
        """Start tracking a record just read; offsets of one partition must come in increasing order."""
        entry = _Entry(offset)
        self._queues.setdefault(partition, deque()).append(entry)
        self._entries[(partition, offset)] = entry

    def settle(self, partition: int, offset: int) -> None:
        self._set(partition, offset, _State.SETTLED)

    def fail(self, partition: int, offset: int) -> None:
        """The record's copy was not written: its partition commits nothing past it from now on."""
        self._set(partition, offset, _State.FAILED)

    @property
    def in_flight(self) -> int:
        return sum(1 for entry in self._entries.values() if entry.state is _State.PENDING)

    def take_committable(self) -> dict[int, int]:
        """Next offset to commit per partition, for partitions that advanced since the last call."""
        taken, self._committable = self._committable, {}
        return taken

    def forget(self, partition: int) -> None:
        """Drop a partition this replay no longer owns (after its last commit)."""
        for entry in self._queues.pop(partition, deque()):
            self._entries.pop((partition, entry.offset), None)
        self._committable.pop(partition, None)

    def _set(self, partition: int, offset: int, state: _State) -> None:
        entry = self._entries.get((partition, offset))
        if entry is None:
            return
        entry.state = state
        self._advance(partition)

    def _advance(self, partition: int) -> None:
        queue = self._queues.get(partition, deque())
        while queue and queue[0].state is _State.SETTLED:
            offset = queue.popleft().offset
            self._entries.pop((partition, offset), None)
            self._committable[partition] = offset + 1
