"""Schema migrations with pyway (platform standard §2.4), applied by the consumer before it consumes.

The SQL files are the ones beside ``pyway.conf`` (``migrations/`` for PostgreSQL, ``migrations-sqlite/``
for the embedded database); the wheel carries them as ``institution_enhancement/migrations/<engine>``.
The history table is ``public.pyway_schema_history_institution_enhancement`` in PostgreSQL, so running
``pyway -c pyway.conf migrate`` by hand and letting the consumer migrate leave one and the same history.

Several replicas may start at once: on PostgreSQL they take turns under an advisory lock.
"""

from __future__ import annotations

import getpass
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from importlib.resources import as_file, files
from pathlib import Path
from typing import Final

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pyway.configfile import ConfigFile
from pyway.dbms.database import factory
from pyway.migrate import Migrate
from pyway.validate import Validate

from institution_enhancement.tasks.config import AppConfig, Engine

__all__ = ["HISTORY_TABLES", "MIGRATION_LOCK_ID", "migrate", "migrations_dir"]

HISTORY_TABLES: Final = {
    Engine.POSTGRES: "public.pyway_schema_history_institution_enhancement",
    Engine.SQLITE: "pyway_schema_history_institution_enhancement",
}
# pg_advisory_lock key: "ie-migr" in ASCII, so it reads back from pg_locks.
MIGRATION_LOCK_ID: Final = int.from_bytes(b"ie-migr", "big")
_SOURCE_DIRS: Final = {Engine.POSTGRES: "migrations", Engine.SQLITE: "migrations-sqlite"}


@contextmanager
def migrations_dir(engine: Engine) -> Iterator[Path]:
    """The directory of ``engine``'s SQL files: inside the installed wheel, or in the source checkout."""
    packaged = files("institution_enhancement") / "migrations" / engine.value
    if packaged.is_dir():
        with as_file(packaged) as path:
            yield path
        return
    # An editable install imports from src/, where the wheel's force-include does not apply.
    yield Path(__file__).resolve().parents[3] / _SOURCE_DIRS[engine]


def migrate(config: AppConfig, directory: Path | None = None) -> list[str]:
    """Apply the pending migrations; returns their file names (empty when the schema is current).

    ``directory`` defaults to :func:`migrations_dir`. Raises ``RuntimeError`` when an applied migration
    was edited afterwards (pyway compares checksums) or when one fails.
    """
    with ExitStack() as stack:
        if directory is None:
            directory = stack.enter_context(migrations_dir(config.engine))
        stack.enter_context(_migration_lock(config))
        stack.enter_context(_pyway_file_handles())
        settings = _pyway_settings(config, directory)
        history = factory(settings.database_type)(settings)
        applied_before = {m.name for m in history.get_all_schema_migrations()}
        Validate(settings).run(skip_initial_check=True)
        Migrate(settings).run()
        return [m.name for m in history.get_all_schema_migrations() if m.name not in applied_before]


def _pyway_settings(config: AppConfig, directory: Path) -> ConfigFile:
    settings = ConfigFile()
    settings.set_explicit("database_migration_dir", str(directory))
    settings.set_explicit("database_table", HISTORY_TABLES[config.engine])
    if config.engine is Engine.SQLITE:
        settings.set_explicit("database_type", "sqlite")
        settings.set_explicit("database_name", config.sqlite_path)
        return settings
    parts = conninfo_to_dict(config.database_url)
    user = str(parts.get("user") or getpass.getuser())
    settings.set_explicit("database_type", "postgres")
    settings.set_explicit("database_host", str(parts.get("host") or "localhost"))
    settings.set_explicit("database_port", str(parts.get("port") or ""))
    settings.set_explicit("database_name", str(parts.get("dbname") or user))
    settings.set_explicit("database_username", user)
    settings.set_explicit("database_password", str(parts.get("password") or ""))
    return settings


@contextmanager
def _pyway_file_handles() -> Iterator[None]:
    # pyway reads each SQL file for its checksum with a bare open() in a for loop. CPython closes the file
    # as soon as the loop ends, but the close warns (ResourceWarning), an error under strict warning filters.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        yield


@contextmanager
def _migration_lock(config: AppConfig) -> Iterator[None]:
    if config.engine is not Engine.POSTGRES:
        yield  # one SQLite file belongs to one process
        return
    with psycopg.connect(config.database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
