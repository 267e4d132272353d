"""The producer's bookkeeping: records between ``produce()`` and their delivery report, and what became of them.

One lock guards it all, since delivery reports arrive on whichever thread serves them.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime

from neotool_common.batches.tracker import BatchTracker
from neotool_common.producing.delivery import DeliveryReport, FailedDelivery
from neotool_common.producing.headers import Header
from neotool_common.producing.spool import Spool, SpooledRecord

__all__ = ["Ledger", "Outgoing", "Tally", "spool_failure"]


@dataclass
class Outgoing:
    """A record between ``produce()`` and its delivery report; ``entry_id`` is set for a spool re-send,
    ``tracker`` for a record of a batch (it hears the record's final outcome)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]
    entry_id: str | None = None
    tracker: BatchTracker | None = None

    def spooled(self, error: str, failed_at: datetime) -> SpooledRecord:
        return SpooledRecord(self.topic, self.key, self.value, self.headers, error, failed_at)


@dataclass
class Tally:
    delivered: int = 0
    failed: int = 0
    spooled: int = 0
    failures: list[FailedDelivery] = field(default_factory=list)


class Ledger:
    """In-flight records by sequence number; counts since the last report and since the start; acknowledged
    re-sends waiting to be removed from the spool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sequence = itertools.count()
        self._in_flight: dict[int, Outgoing] = {}
        self._tally = Tally()
        self._totals = Tally()
        self._resend_acknowledged: set[str] = set()

    def __len__(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def track(self, outgoing: Outgoing) -> int:
        """Note ``outgoing`` as in flight; returns the sequence number its delivery report will name."""
        sequence = next(self._sequence)
        with self._lock:
            self._in_flight[sequence] = outgoing
        if outgoing.tracker is not None:
            outgoing.tracker.sent()
        return sequence

    def forget(self, sequence: int) -> None:
        """The record was never queued (the caller sees why)."""
        with self._lock:
            outgoing = self._in_flight.pop(sequence)
        if outgoing.tracker is not None:
            outgoing.tracker.unsent()

    def answered(self, sequence: int) -> Outgoing | None:
        """The record whose delivery report came; None when it was given up on at close."""
        with self._lock:
            return self._in_flight.pop(sequence, None)

    def abandon_all(self) -> list[Outgoing]:
        """Give up on every record in flight; returns those that are not re-sends of the spool."""
        with self._lock:
            abandoned, self._in_flight = list(self._in_flight.values()), {}
        return [outgoing for outgoing in abandoned if outgoing.entry_id is None]

    def resending(self) -> set[str]:
        """The spool entries being re-sent right now."""
        with self._lock:
            return {o.entry_id for o in self._in_flight.values() if o.entry_id is not None}

    def delivered(self, outgoing: Outgoing, partition: int, offset: int) -> None:
        if outgoing.tracker is not None:
            outgoing.tracker.acknowledged(partition, offset)
        with self._lock:
            if outgoing.entry_id is None:
                self._tally.delivered += 1
                self._totals.delivered += 1
            else:
                self._resend_acknowledged.add(outgoing.entry_id)

    def failed(self, outgoing: Outgoing, spooled: bool, problem: str) -> None:
        """A final failure; one that is in no spool is named in the next report."""
        if outgoing.tracker is not None:
            outgoing.tracker.failed(spooled)
        with self._lock:
            for tally in (self._tally, self._totals):
                tally.failed += 1
                tally.spooled += spooled
            if not spooled:
                self._tally.failures.append(FailedDelivery(outgoing.topic, outgoing.key, problem))

    def take_report(self) -> tuple[DeliveryReport, list[FailedDelivery]]:
        """What happened since the last report, and the failures in no spool; starts the next report."""
        with self._lock:
            tally, self._tally = self._tally, Tally()
            pending = self._pending()
        return DeliveryReport(tally.delivered, tally.failed, tally.spooled, pending), tally.failures

    def totals(self) -> DeliveryReport:
        with self._lock:
            totals = self._totals
            return DeliveryReport(totals.delivered, totals.failed, totals.spooled, self._pending())

    def take_resend_acknowledged(self) -> set[str]:
        with self._lock:
            acknowledged, self._resend_acknowledged = self._resend_acknowledged, set()
        return acknowledged

    def restore_resend_acknowledged(self, entry_ids: set[str]) -> None:
        """Removing ``entry_ids`` from the spool failed: a later settle tries again."""
        with self._lock:
            self._resend_acknowledged |= entry_ids

    def _pending(self) -> int:
        return sum(1 for outgoing in self._in_flight.values() if outgoing.entry_id is None)


def spool_failure(spool: Spool | None, outgoing: Outgoing, error: str, failed_at: datetime) -> tuple[bool, str]:
    """Append a finally failed record to ``spool``: whether it is safe there, and the problem to report if not."""
    if spool is None:
        return False, error
    try:
        spool.append(outgoing.spooled(error, failed_at))
    except OSError as exc:
        return False, f"{error}; the spool write failed too: {exc}"
    return True, error
