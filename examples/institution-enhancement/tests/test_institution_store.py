"""The store and its migrations, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from conftest import EXAMPLE_ROOT, message_for
from psycopg.conninfo import conninfo_to_dict

from institution_enhancement.tasks.config import AppConfig, Engine
from institution_enhancement.tasks.directory import DirectoryEntry
from institution_enhancement.tasks.message import EnhancedInstitution, Institution
from institution_enhancement.tasks.migrations import HISTORY_TABLES, migrate, migrations_dir
from institution_enhancement.tasks.processor import enhance
from institution_enhancement.tasks.routing import parse_routing_number
from institution_enhancement.tasks.samples import Outcome, sample_records
from institution_enhancement.tasks.store import (
    APPLICATION_NAME,
    InstitutionStore,
    PostgresInstitutionStore,
    count_rows,
    open_store,
)

MIGRATIONS = ["V1_1__create_schema.sql", "V1_2__create_institutions.sql"]


def rows(count: int, seed: int = 5) -> list[EnhancedInstitution]:
    built = []
    for offset, record in enumerate(sample_records(count, seed=seed, poison_ratio=0, rate_limited_ratio=0)):
        message = message_for(record, offset=offset)
        routing = parse_routing_number(message.payload["routing_number"])
        built.append(enhance(message, Institution.from_payload(message.payload), routing, DirectoryEntry("Boston")))
    return built


@pytest.fixture
def store(database_url: str) -> Iterator[InstitutionStore]:
    config = AppConfig(database_url=database_url)
    migrate(config)
    opened = open_store(config)
    yield opened
    opened.close()


def test_migrations_apply_once_and_then_are_a_no_op(database_url: str) -> None:
    config = AppConfig(database_url=database_url)
    assert migrate(config) == MIGRATIONS
    assert migrate(config) == []


def test_rows_round_trip_on_both_engines(store: InstitutionStore) -> None:
    row = rows(1)[0]
    store.upsert(row)
    stored = store.fetch(row.record_id)
    assert stored is not None
    for column in ("record_id", "batch_id", "ingested_at", "name", "routing_number", "fed_district", "swift_bic"):
        assert stored[column] == getattr(row, column), column
    assert stored["source_offset"] == row.source.offset
    assert stored["first_processed_at"] <= stored["last_processed_at"]
    assert store.fetch("no-such-record") is None


def test_upserts_are_keyed_on_record_id(store: InstitutionStore, database_url: str) -> None:
    batch = rows(25)
    for row in batch + batch[:10]:
        store.upsert(row)
    assert store.count() == 25
    assert count_rows(database_url) == 25
    first = store.fetch(batch[0].record_id)
    last = store.fetch(batch[-1].record_id)
    assert first is not None
    assert last is not None
    assert (first["delivery_count"], last["delivery_count"]) == (2, 1)


def test_postgres_tables_live_in_their_own_schema_and_history_in_public(postgres_url: str) -> None:
    migrate(AppConfig(database_url=postgres_url))
    with psycopg.connect(postgres_url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        history = conn.execute(
            "SELECT name FROM public.pyway_schema_history_institution_enhancement ORDER BY installed_rank"
        ).fetchall()
    assert tables == [
        ("institution_enhancement", "institutions"),
        ("public", "pyway_schema_history_institution_enhancement"),
    ]
    assert [name for (name,) in history] == MIGRATIONS


def test_an_edited_migration_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    config = AppConfig(database_url=sqlite_url)
    migrate(config)
    edited = tmp_path / "edited"
    edited.mkdir()
    with migrations_dir(Engine.SQLITE) as original:
        for sql_file in original.iterdir():
            (edited / sql_file.name).write_text(sql_file.read_text() + "\n-- edited after it was applied\n")
    with pytest.raises(RuntimeError, match=r"V1_1__create_schema.sql\] with diff script"):
        migrate(config, edited)


def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    config = AppConfig(database_url=postgres_url)
    results: list[list[str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def replica() -> None:
        start.wait()
        try:
            results.append(migrate(config))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(results, key=len) == [[], [], [], MIGRATIONS]


def test_the_store_reconnects_after_postgres_dropped_its_connection(postgres_url: str) -> None:
    config = AppConfig(database_url=postgres_url)
    migrate(config)
    store = PostgresInstitutionStore(postgres_url)
    first, second = rows(2)
    try:
        store.upsert(first)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s AND datname = current_database()",
                (APPLICATION_NAME,),
            ).fetchone()
        assert killed == (1,)
        with pytest.raises(psycopg.OperationalError):
            store.upsert(second)  # the runner retries this record...
        store.upsert(second)  # ...and the retry gets a new connection
        assert store.count() == 2
    finally:
        store.close()


def test_pyway_conf_agrees_with_the_consumer() -> None:
    conf = yaml.safe_load((EXAMPLE_ROOT / "pyway.conf").read_text())
    assert conf["database_table"] == HISTORY_TABLES[Engine.POSTGRES]
    assert conf["database_type"] == "postgres"
    with migrations_dir(Engine.POSTGRES) as directory:
        assert directory.resolve() == (EXAMPLE_ROOT / conf["database_migration_dir"]).resolve()
        assert sorted(p.name for p in directory.iterdir()) == MIGRATIONS
    with migrations_dir(Engine.SQLITE) as directory:
        assert sorted(p.name for p in directory.iterdir()) == MIGRATIONS


def test_the_pyway_cli_and_the_consumer_share_one_history(postgres_url: str) -> None:
    parts = conninfo_to_dict(postgres_url)
    env = {
        **os.environ,
        "PGHOST": str(parts["host"]),
        "PGPORT": str(parts.get("port") or "5432"),
        "PGDATABASE": str(parts["dbname"]),
        "PGUSER": str(parts["user"]),
        "PGPASSWORD": "unused-with-trust-auth",
    }
    pyway = Path(sys.executable).with_name("pyway")
    result = subprocess.run(
        [str(pyway), "-c", "pyway.conf", "migrate"],
        cwd=EXAMPLE_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "V1_2__create_institutions.sql SUCCESS" in result.stdout
    assert migrate(AppConfig(database_url=postgres_url)) == []
    assert count_rows(postgres_url) == 0


def test_sample_rows_cover_every_outcome() -> None:
    outcomes = {r.outcome for r in sample_records(200, seed=1, invalid_ratio=0.01)}
    assert outcomes == set(Outcome)
