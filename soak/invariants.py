"""The invariants every scenario checks, computed from P (the producer), O (the ledger) and D (the DLQ topic).

=============================  ================================================================================
invariant                      how it is checked
=============================  ================================================================================
nothing lost                   P - (O | D) is empty: every acknowledged record was processed or dead-lettered
no valid record in D           no record the handler accepts is in the DLQ (a scenario may allow a stated bound)
no poison record in O          no record that must be dead-lettered ever reached a successful ``process()``
right reason                   every DLQ copy carries the ``dlq.reason`` its record must fail with, and the
                               source partition and offset it was produced at
order                          per partition, the first processings of records follow their offsets
commits only completed work    every commit requested for offset c of a partition came after every offset
                               below c was processed or acknowledged in the DLQ (the ledger's global order)
no rewind                      no offset is processed again after a commit past it was accepted
duplicates                     sum of (deliveries - 1) over O, and DLQ copies beyond the first, against the bound
                               the scenario states
=============================  ================================================================================
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from neotool_common.deadletter.headers import (
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_REASON,
)
from neotool_common.testing.harness import ReadRecord, read_topic
from soak.ledger import Event, EventKind, Ledger
from soak.workload import Produced

__all__ = [
    "HandoffWindows",
    "KillWindow",
    "Verdict",
    "handoff_windows",
    "judge",
    "kill_window",
    "read_dlq",
    "repeated_outside_windows",
]


@dataclass
class Verdict:
    """The figures of one scenario run and every invariant violation found (empty when all hold)."""

    records: int
    processed: int
    dead: int
    lost: set[str]
    duplicates: int
    dlq_copies: int
    valid_in_dlq: set[str]
    poison_in_o: set[str]
    uncommitted_processings: int
    uncommitted_dead_letters: int
    failed_dead_letter_writes: int
    violations: list[str] = field(default_factory=list)
    duplicated: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        return (
            f"records={self.records} processed={self.processed} dlq={self.dead} lost={len(self.lost)} "
            f"duplicates={self.duplicates} dlq_copies={self.dlq_copies}"
        )

    def require_within_handoff_windows(self) -> None:
        """The bound of scenarios with members coming and going: repeats only of work no commit covered.

        A DLQ copy can also come twice from one member: a write reported failed (timed out while a partition
        leader moved) may have been stored all the same, and the runner sends it again.
        """
        self.require(
            max_duplicates=self.uncommitted_processings,
            max_dlq_copies=self.uncommitted_dead_letters + self.failed_dead_letter_writes,
        )

    def require(self, *, max_duplicates: int | float = 0, max_dlq_copies: int | float = 0) -> None:
        """Raise with every violation (the invariants, then the scenario's duplicate bounds)."""
        problems = list(self.violations)
        if self.duplicates > max_duplicates:
            problems.append(f"{self.duplicates} duplicate processings, bound {max_duplicates}: {self.sample_dups()}")
        if self.dlq_copies > max_dlq_copies:
            problems.append(f"{self.dlq_copies} extra DLQ copies, bound {max_dlq_copies}")
        assert not problems, "invariants violated:\n  " + "\n  ".join(problems)

    def sample_dups(self) -> str:
        return ", ".join(f"{k}x{n}" for k, n in self.duplicated.most_common(5))


def read_dlq(bootstrap: str, topic: str) -> list[ReadRecord]:
    return read_topic(bootstrap, topic + ".dlq", timeout=60)


def judge(
    produced: Produced,
    ledger: Ledger,
    dead_letters: list[ReadRecord],
    topic: str,
    *,
    allowed_valid_in_dlq: int = 0,
) -> Verdict:
    deliveries = ledger.deliveries()
    dead = Counter(_key(r) for r in dead_letters)
    acked = produced.acked
    lost = {k for k in acked if k not in deliveries and k not in dead}
    valid_in_dlq = {k for k in dead if k in acked and acked[k].planned.valid}
    poison_in_o = {k for k in deliveries if k in acked and not acked[k].planned.valid}
    duplicated = Counter({k: n - 1 for k, n in deliveries.items() if n > 1})
    windows = _handoff_windows(ledger, topic)
    verdict = Verdict(
        records=len(acked),
        processed=len(deliveries),
        dead=len(dead),
        lost=lost,
        duplicates=sum(duplicated.values()),
        dlq_copies=sum(n - 1 for n in dead.values()),
        valid_in_dlq=valid_in_dlq,
        poison_in_o=poison_in_o,
        uncommitted_processings=windows[0],
        uncommitted_dead_letters=windows[1],
        failed_dead_letter_writes=ledger.count(EventKind.DLQ_FAILED),
        duplicated=duplicated,
    )
    problems = verdict.violations
    if lost:
        problems.append(f"{len(lost)} records lost (in P, not in O | D): {sorted(lost)[:10]}")
    if len(valid_in_dlq) > allowed_valid_in_dlq:
        problems.append(
            f"{len(valid_in_dlq)} valid records in D (allowed {allowed_valid_in_dlq}): {sorted(valid_in_dlq)[:10]}"
        )
    if poison_in_o:
        problems.append(f"{len(poison_in_o)} records that must fail were processed: {sorted(poison_in_o)[:10]}")
    problems += _wrong_dead_letters(produced, dead_letters, topic)
    problems += _out_of_order(ledger, topic)
    problems += _commits_past_incomplete_work(ledger, topic)
    problems += _processed_after_accepted_commit(ledger, topic)
    return verdict


def _key(record: ReadRecord) -> str:
    return record.key.decode("utf-8", "replace") if record.key is not None else ""


def _wrong_dead_letters(produced: Produced, dead_letters: list[ReadRecord], topic: str) -> list[str]:
    problems = []
    for record in dead_letters:
        acked = produced.acked.get(_key(record))
        if acked is None or record.header(DLQ_ORIGINAL_TOPIC) != topic:
            continue  # not a record of this run's P (a replayed copy is checked by its scenario)
        where = (record.header(DLQ_ORIGINAL_PARTITION), record.header(DLQ_ORIGINAL_OFFSET))
        if where != (str(acked.partition), str(acked.offset)) and record.header("dlq.replay.count") is None:
            problems.append(f"{_key(record)}: DLQ copy says {where}, produced at {acked.partition}:{acked.offset}")
        reason = record.header(DLQ_REASON)
        if not acked.planned.valid and reason != acked.planned.expect:
            problems.append(f"{_key(record)}: dlq.reason {reason!r}, expected {acked.planned.expect!r}")
    return problems


def _out_of_order(ledger: Ledger, topic: str) -> list[str]:
    """Per partition, the offsets of first processings must rise in the order the ledger saw them."""
    seen: set[tuple[int, int]] = set()
    last: dict[int, int] = {}
    problems = []
    for event in ledger.events(EventKind.PROCESSED):
        if event.topic != topic:
            continue
        assert event.partition is not None
        assert event.offset is not None
        where = (event.partition, event.offset)
        if where in seen:
            continue
        seen.add(where)
        if event.offset < last.get(event.partition, -1):
            problems.append(
                f"partition {event.partition}: offset {event.offset} first processed after offset "
                f"{last[event.partition]} (by {event.member}, ledger seq {event.seq})"
            )
        last[event.partition] = max(last.get(event.partition, -1), event.offset)
    return problems[:10]


def _commits_past_incomplete_work(ledger: Ledger, topic: str) -> list[str]:
    """A commit of offset c requested before some offset below c was completed is an at-least-once violation.

    Completed: processed, or its dead-letter or retry-tier copy acknowledged (both logged at the source position)."""
    completed: dict[int, dict[int, int]] = defaultdict(dict)  # partition -> offset -> seq of first completion
    commits = []
    for event in ledger.events(EventKind.PROCESSED, EventKind.DLQ_ACKED, EventKind.TIER_ACKED, EventKind.COMMIT):
        if event.topic != topic:
            continue
        assert event.partition is not None
        assert event.offset is not None
        if event.kind == EventKind.COMMIT:
            commits.append(event)
        else:
            completed[event.partition].setdefault(event.offset, event.seq)
    problems = []
    for partition in {c.partition for c in commits}:
        assert partition is not None
        done = completed[partition]
        # ready[c]: the ledger seq by which offsets 0..c-1 were all complete (infinite if one never was)
        ready = [0.0]
        for offset in range(max((c.offset or 0) for c in commits if c.partition == partition)):
            ready.append(max(ready[-1], done.get(offset, math.inf)))
        for commit in (c for c in commits if c.partition == partition):
            assert commit.offset is not None
            if ready[commit.offset] > commit.seq:
                missing = next(o for o in range(commit.offset) if done.get(o, math.inf) > commit.seq)
                problems.append(
                    f"{commit.member} requested a commit of {topic}[{partition}]@{commit.offset} "
                    f"(ledger seq {commit.seq}) before offset {missing} was processed or dead-lettered"
                )
    return problems[:10]


def _processed_after_accepted_commit(ledger: Ledger, topic: str) -> list[str]:
    """Once a commit past an offset was accepted, no member may process that offset again (no rewind)."""
    accepted: dict[int, int] = {}  # partition -> highest accepted commit so far
    problems = []
    for event in ledger.events(EventKind.PROCESSED, EventKind.COMMIT_OK):
        if event.topic != topic:
            continue
        assert event.partition is not None
        assert event.offset is not None
        if event.kind == EventKind.COMMIT_OK:
            accepted[event.partition] = max(accepted.get(event.partition, 0), event.offset)
        elif event.offset < accepted.get(event.partition, 0):
            problems.append(
                f"{event.member} processed {topic}[{event.partition}]@{event.offset} (ledger seq {event.seq}) "
                f"after a commit of offset {accepted[event.partition]} was accepted"
            )
    return problems[:10]


@dataclass
class HandoffWindows:
    """What whoever gets a partition next may legitimately do again (see :func:`handoff_windows`)."""

    processings: int = 0  # completed in a tenure and covered by none of its accepted commits when it ended
    dead_letters: int = 0  # likewise, dead-letter writes
    # (member, partition, ledger seq of the hand-over) -> completions after it: records that were inside the
    # handler when the member gave the partition up (lost, or revoked with the handler still busy)
    in_flight: Counter[tuple[str, int, int]] = field(default_factory=Counter)

    @property
    def bound(self) -> int:
        return self.processings + sum(self.in_flight.values())


def handoff_windows(ledger: Ledger, topic: str, extra: Iterable[Event] = ()) -> HandoffWindows:
    """Processings and dead-letter writes no accepted commit of their member covered while it held the partition.

    Only these can be repeated by whoever gets the partition next. A member's *tenure* of a partition runs from
    its assignment to its hand-over (revoked, after the runner's final commit; lost) or to the end of the ledger
    (it was killed, or still runs). Its window is what it completed in the tenure minus what its accepted
    commits covered. A completion after the hand-over (before the member is assigned the partition again) is a
    record that was inside the handler then: the runner cannot take a running ``process()`` back, it only drops
    the records that had not started. It counts too, however it is committed later, and the caller checks that
    there are no more of them per hand-over than the mode has records inside the handler at once.

    ``extra``: more completions to count as processings, placed in the ledger's order by their ``seq`` (the
    nemesis's retry-tier writes, at the position the record was read from: redone, each is one more processing).
    """
    tenures = _Tenures()
    kinds = (
        EventKind.PROCESSED,
        EventKind.DLQ_SENT,
        EventKind.COMMIT_OK,
        EventKind.ASSIGNED,
        EventKind.REVOKED,
        EventKind.LOST,
    )
    events = ledger.events(*kinds)
    more = [e for e in extra if e.topic == topic]
    if more:
        events = sorted(events + more, key=lambda e: e.seq)
    for event in events:
        if event.topic == topic and event.partition is not None:
            tenures.feed(event, (event.member, event.partition))
    windows = tenures.windows
    windows.processings += sum(len(held) for held in tenures.processed.values())
    windows.dead_letters += sum(len(held) for held in tenures.dead.values())
    return windows


class _Tenures:
    """The state of :func:`handoff_windows`: per (member, partition), what the current tenure left uncommitted."""

    def __init__(self) -> None:
        self.processed: dict[tuple[str, int], set[int]] = defaultdict(set)
        self.dead: dict[tuple[str, int], set[int]] = defaultdict(set)
        self.handed_over: dict[tuple[str, int], int] = {}  # (member, partition) -> seq of its last hand-over
        self.windows = HandoffWindows()

    def feed(self, event: Event, where: tuple[str, int]) -> None:
        offset = event.offset or 0
        if event.kind == EventKind.ASSIGNED:
            self.handed_over.pop(where, None)
        elif event.kind == EventKind.PROCESSED and where in self.handed_over:
            self.windows.in_flight[(*where, self.handed_over[where])] += 1
        elif event.kind in (EventKind.PROCESSED, EventKind.DLQ_SENT):
            (self.processed if event.kind == EventKind.PROCESSED else self.dead)[where].add(offset)
        elif event.kind == EventKind.COMMIT_OK:
            for held in (self.processed[where], self.dead[where]):
                held.difference_update({o for o in held if o < offset})
        else:
            self.windows.processings += len(self.processed.pop(where, ()))
            self.windows.dead_letters += len(self.dead.pop(where, ()))
            self.handed_over[where] = event.seq


def _handoff_windows(ledger: Ledger, topic: str) -> tuple[int, int]:
    """``(processings, dead-letter writes)`` that may come again: :func:`handoff_windows`, records in flight
    at a hand-over included."""
    windows = handoff_windows(ledger, topic)
    return windows.bound, windows.dead_letters


@dataclass(frozen=True)
class KillWindow:
    """What a killed member had completed at or above the group's committed offsets: what its kill may repeat."""

    member: str
    processed: frozenset[str]
    dlq_sent: int

    @property
    def size(self) -> int:
        return len(self.processed)


def kill_window(ledger: Ledger, member: str, topic: str, committed: dict[int, int]) -> KillWindow:
    """The commit window of ``member`` against ``committed`` (the group's offsets, read after the kill)."""

    def uncommitted(partition: int | None, offset: int | None) -> bool:
        assert partition is not None
        assert offset is not None
        return offset >= max(0, committed.get(partition, 0))

    events = [e for e in ledger.events(EventKind.PROCESSED, EventKind.DLQ_SENT, member=member) if e.topic == topic]
    processed = {e.record_id for e in events if e.kind == EventKind.PROCESSED and uncommitted(e.partition, e.offset)}
    sent = sum(1 for e in events if e.kind == EventKind.DLQ_SENT and uncommitted(e.partition, e.offset))
    return KillWindow(member, frozenset(r for r in processed if r is not None), sent)


def repeated_outside_windows(ledger: Ledger, windows: list[KillWindow], later: dict[str, list[str]]) -> list[str]:
    """Records a killed member processed that a later member processed again, though they were committed."""
    problems = []
    for window in windows:
        again: set[str] = set()
        for member in later[window.member]:
            again |= set(ledger.processed_by(member))
        outside = (set(ledger.processed_by(window.member)) & again) - window.processed
        if outside:
            problems.append(f"{window.member}: {len(outside)} committed records processed again: {sorted(outside)[:5]}")
    return problems
