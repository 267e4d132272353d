"""The ledger: what every consumer process of a scenario did, in one SQLite file, in one global order.

Consumer processes write to it (:mod:`soak.consumer`), the scenario reads it. Two tables:

``processed``
    one row per ``record_id`` whose ``process()`` returned, with how many times that happened
    (``deliveries``): the idempotent store a real consumer would upsert into. O is its set of ids.
``events``
    an append-only log, ordered by ``seq``: each processing (with partition and offset), each failed
    attempt, each dead-letter write sent and acknowledged, each commit requested and its result, each
    assignment change, and the faults the scenario injected. The invariants are checked on it.

A processing is written in one transaction (upsert plus event) before ``process()`` returns, so a
SIGKILL at any point leaves either both or neither. WAL mode lets several processes write and the
scenario read at the same time; a write waits for the lock instead of failing.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Event", "EventKind", "Ledger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS processed (
    record_id  TEXT PRIMARY KEY,
    deliveries INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        REAL NOT NULL,
    member    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    topic     TEXT,
    partition INTEGER,
    "offset"  INTEGER,
    record_id TEXT,
    detail    TEXT
);
CREATE INDEX IF NOT EXISTS events_kind ON events (kind, member);
"""


class EventKind:
    """The ``events.kind`` values, and who writes them."""

    PROCESSED = "processed"  # process() returned (consumer)
    ATTEMPT_FAILED = "attempt_failed"  # process() raised a transient error; detail = attempt number
    DLQ_SENT = "dlq_sent"  # a dead-letter write handed to the producer; partition/offset are the source's
    DLQ_ACKED = "dlq_acked"  # the broker acknowledged that write
    DLQ_FAILED = "dlq_failed"  # the broker refused it (the runner sends it again)
    # a copy written to a retry tier (a move on, or a follower of its key): topic/partition/offset are the SOURCE
    # record's (``retry.original.*``); detail the tier topic and where the record was read (``<tier> from
    # topic:partition:offset``), acknowledged ``topic:partition`` it landed in, failed ``topic: error``
    TIER_SENT = "tier_sent"
    TIER_ACKED = "tier_acked"
    TIER_FAILED = "tier_failed"
    COMMIT = "commit"  # an offset commit requested; offset is the committed position
    COMMIT_OK = "commit_ok"  # the coordinator accepted it
    COMMIT_FAILED = "commit_failed"  # it was refused; detail = the error
    ASSIGNED = "assigned"
    REVOKED = "revoked"
    LOST = "lost"
    STARTED = "started"  # a consumer process is about to subscribe; detail = pid
    FAULT = "fault"  # injected by the scenario or a fault hook; detail says which


@dataclass(frozen=True)
class Event:
    seq: int
    at: float
    member: str
    kind: str
    topic: str | None
    partition: int | None
    offset: int | None
    record_id: str | None
    detail: str | None


class Ledger:
    """One connection to a scenario's ledger file. Not shared between threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A killed process loses nothing the OS has: only a power cut would need FULL.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- writing -------------------------------------------------------------------------------

    def record_processed(
        self, member: str, topic: str, partition: int, offset: int, record_id: str, detail: str | None = None
    ) -> int:
        """Upsert the record and log the processing, atomically; returns its deliveries so far (1 the first time).

        A record read from a retry tier is logged at its tier position, ``detail`` naming its source position
        (``topic:partition:offset``)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO processed (record_id, deliveries) VALUES (?, 1) "
                "ON CONFLICT (record_id) DO UPDATE SET deliveries = deliveries + 1",
                (record_id,),
            )
            self._insert(db, member, EventKind.PROCESSED, topic, partition, offset, record_id, detail)
            (deliveries,) = db.execute("SELECT deliveries FROM processed WHERE record_id = ?", (record_id,)).fetchone()
        return int(deliveries)

    def record(
        self,
        member: str,
        kind: str,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        record_id: str | None = None,
        detail: str | None = None,
    ) -> None:
        with self._transaction() as db:
            self._insert(db, member, kind, topic, partition, offset, record_id, detail)

    def record_many(self, member: str, kind: str, rows: Sequence[tuple[str, int, int, str | None]]) -> None:
        """Several ``(topic, partition, offset, detail)`` events of one kind in one transaction."""
        with self._transaction() as db:
            for topic, partition, offset, detail in rows:
                self._insert(db, member, kind, topic, partition, offset, None, detail)

    @staticmethod
    def _insert(
        db: sqlite3.Connection,
        member: str,
        kind: str,
        topic: str | None,
        partition: int | None,
        offset: int | None,
        record_id: str | None,
        detail: str | None,
    ) -> None:
        db.execute(
            'INSERT INTO events (at, member, kind, topic, partition, "offset", record_id, detail) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (time.time(), member, kind, topic, partition, offset, record_id, detail),
        )

    # -- reading -------------------------------------------------------------------------------

    def deliveries(self) -> dict[str, int]:
        """``record_id`` -> how many times ``process()`` returned for it."""
        return dict(self._db.execute("SELECT record_id, deliveries FROM processed").fetchall())

    def processed_count(self, member: str | None = None) -> int:
        if member is None:
            (count,) = self._db.execute("SELECT count(*) FROM processed").fetchone()
        else:
            (count,) = self._db.execute(
                "SELECT count(*) FROM events WHERE kind = ? AND member = ?", (EventKind.PROCESSED, member)
            ).fetchone()
        return int(count)

    def deliveries_of(self, record_id: str) -> int:
        row = self._db.execute("SELECT deliveries FROM processed WHERE record_id = ?", (record_id,)).fetchone()
        return 0 if row is None else int(row[0])

    def count(self, kind: str, member: str | None = None, record_id: str | None = None) -> int:
        query, args = "SELECT count(*) FROM events WHERE kind = ?", [kind]
        if member is not None:
            query, args = query + " AND member = ?", [*args, member]
        if record_id is not None:
            query, args = query + " AND record_id = ?", [*args, record_id]
        (count,) = self._db.execute(query, args).fetchone()
        return int(count)

    def events(self, *kinds: str, member: str | None = None, after_seq: int = 0) -> list[Event]:
        query = 'SELECT seq, at, member, kind, topic, partition, "offset", record_id, detail FROM events WHERE seq > ?'
        args: list[object] = [after_seq]
        if kinds:
            query += f" AND kind IN ({', '.join('?' * len(kinds))})"
            args += kinds
        if member is not None:
            query += " AND member = ?"
            args.append(member)
        return [Event(*row) for row in self._db.execute(query + " ORDER BY seq", args).fetchall()]

    def last_seq(self) -> int:
        (seq,) = self._db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        return int(seq)

    def processed_by(self, member: str) -> Counter[str]:
        rows = self._db.execute(
            "SELECT record_id FROM events WHERE kind = ? AND member = ?", (EventKind.PROCESSED, member)
        ).fetchall()
        return Counter(record_id for (record_id,) in rows)

    def assigned_now(self, member: str) -> set[int]:
        """The partitions ``member`` holds according to its own assignment events."""
        held: set[int] = set()
        for event in self.events(EventKind.ASSIGNED, EventKind.REVOKED, EventKind.LOST, member=member):
            assert event.partition is not None
            if event.kind == EventKind.ASSIGNED:
                held.add(event.partition)
            else:
                held.discard(event.partition)
        return held
