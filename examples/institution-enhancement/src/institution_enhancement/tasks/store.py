"""Where enriched rows go: ``institution_enhancement.institutions`` in PostgreSQL, or the same table in SQLite.

Both stores write with one ``INSERT ... ON CONFLICT (record_id) DO UPDATE`` statement in autocommit
mode: a record processed twice leaves one row (its ``delivery_count`` says how often it was written),
and an older version of a record never overwrites a newer one (``ingested_at`` decides).

The PostgreSQL store reconnects on its next call after the connection broke, so a database restart is
a transient error the runner retries, not a crash.

Both stores may be called from several threads at once (the consumer runs eight records at a time): each holds
one connection and lets one statement at a time use it. Upserts are short beside the directory lookup that
precedes them; with a connection pool (``psycopg_pool``) they would overlap as well.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import psycopg
from psycopg.rows import dict_row

from institution_enhancement.tasks.config import AppConfig, Engine
from institution_enhancement.tasks.message import EnhancedInstitution

__all__ = [
    "APPLICATION_NAME",
    "COLUMNS",
    "POSTGRES_TABLE",
    "SQLITE_TABLE",
    "InstitutionStore",
    "PostgresInstitutionStore",
    "SqliteInstitutionStore",
    "count_rows",
    "open_store",
]

POSTGRES_TABLE: Final = "institution_enhancement.institutions"
SQLITE_TABLE: Final = "institutions"
APPLICATION_NAME: Final = "institution-enhancement"  # shows in pg_stat_activity
COLUMNS: Final = (
    "record_id",
    "batch_id",
    "ingested_at",
    "institution_id",
    "name",
    "normalized_name",
    "institution_type",
    "routing_number",
    "routing_class",
    "fed_district",
    "servicing_fed_office",
    "country",
    "state",
    "city",
    "swift_bic",
    "website_domain",
    "total_assets_usd",
    "source_topic",
    "source_partition",
    "source_offset",
)


class InstitutionStore(Protocol):
    """The table of enriched institutions. Calls may block on I/O, raise the driver's errors, and come from
    several threads at once."""

    def upsert(self, row: EnhancedInstitution) -> None:
        """Insert the row, or update the existing one with the same ``record_id`` unless it is newer."""

    def count(self) -> int: ...

    def fetch(self, record_id: str) -> dict[str, Any] | None:
        """The stored columns of one record (timestamps as aware datetimes), or None."""

    def close(self) -> None: ...


def _upsert_sql(table: str, placeholder: Callable[[str], str], now: str) -> str:
    updates = ", ".join(f"{column} = excluded.{column}" for column in COLUMNS[1:])
    # Table and column names are the constants above; values always travel as bound parameters.
    return (
        f"INSERT INTO {table} AS t ({', '.join(COLUMNS)}) VALUES ({', '.join(map(placeholder, COLUMNS))}) "  # noqa: S608
        f"ON CONFLICT (record_id) DO UPDATE SET {updates}, last_processed_at = {now}, "
        "delivery_count = t.delivery_count + 1 WHERE t.ingested_at <= excluded.ingested_at"
    )


def _parameters(row: EnhancedInstitution, ingested_at: object) -> dict[str, object]:
    values: dict[str, object] = {column: getattr(row, column) for column in COLUMNS if hasattr(row, column)}
    values.update(
        ingested_at=ingested_at,
        source_topic=row.source.topic,
        source_partition=row.source.partition,
        source_offset=row.source.offset,
    )
    return values


class PostgresInstitutionStore:
    """psycopg 3, one connection in autocommit mode, reopened after it broke, one statement at a time."""

    _UPSERT: Final = _upsert_sql(POSTGRES_TABLE, lambda c: f"%({c})s", "now()")

    def __init__(self, url: str, connect_timeout_s: int = 10) -> None:
        self._url = url
        self._connect_timeout_s = connect_timeout_s
        self._conn: psycopg.Connection[dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def _connection(self) -> psycopg.Connection[dict[str, Any]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = psycopg.connect(
                self._url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=self._connect_timeout_s,
                application_name=APPLICATION_NAME,
            )
        return self._conn

    def upsert(self, row: EnhancedInstitution) -> None:
        with self._lock:
            self._connection().execute(self._UPSERT, _parameters(row, row.ingested_at))

    def count(self) -> int:
        with self._lock:
            result = self._connection().execute(f"SELECT count(*) AS n FROM {POSTGRES_TABLE}").fetchone()  # noqa: S608
        assert result is not None
        return int(result["n"])

    def fetch(self, record_id: str) -> dict[str, Any] | None:
        query = f"SELECT * FROM {POSTGRES_TABLE} WHERE record_id = %s"  # noqa: S608
        with self._lock:
            row = self._connection().execute(query, (record_id,)).fetchone()
        if row is None:
            return None
        return {**row, "batch_id": str(row["batch_id"])}

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class SqliteInstitutionStore:
    """The embedded default: one file, autocommit, WAL so a reader (``count_rows``) never blocks the writer."""

    _UPSERT: Final = _upsert_sql(SQLITE_TABLE, lambda c: f":{c}", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")

    def __init__(self, path: str) -> None:
        # setup() and the worker threads all use this connection; the lock lets one statement at a time use it.
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._lock = threading.Lock()

    def upsert(self, row: EnhancedInstitution) -> None:
        with self._lock:
            self._conn.execute(self._UPSERT, _parameters(row, _utc_text(row.ingested_at)))

    def count(self) -> int:
        with self._lock:
            (n,) = self._conn.execute(f"SELECT count(*) FROM {SQLITE_TABLE}").fetchone()  # noqa: S608
        return int(n)

    def fetch(self, record_id: str) -> dict[str, Any] | None:
        query = f"SELECT * FROM {SQLITE_TABLE} WHERE record_id = ?"  # noqa: S608
        with self._lock:
            row = self._conn.execute(query, (record_id,)).fetchone()
        if row is None:
            return None
        stored = dict(row)
        for column in ("ingested_at", "first_processed_at", "last_processed_at"):
            stored[column] = datetime.fromisoformat(stored[column])
        return stored

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def open_store(config: AppConfig) -> InstitutionStore:
    if config.engine is Engine.POSTGRES:
        return PostgresInstitutionStore(config.database_url)
    return SqliteInstitutionStore(config.sqlite_path)


@contextmanager
def _opened(config: AppConfig) -> Iterator[InstitutionStore]:
    store = open_store(config)
    try:
        yield store
    finally:
        store.close()


def count_rows(database_url: str) -> int:
    """How many institutions the job has written to ``database_url`` (one per distinct ``record_id``)."""
    with _opened(AppConfig(database_url=database_url)) as store:
        return store.count()
