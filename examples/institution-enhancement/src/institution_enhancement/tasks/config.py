"""The job's own settings, read from the environment (the runner reads ``KAFKA_*``, ``RETRY_*`` and the rest).

=====================  =============================================================================
``DATABASE_URL``        ``postgresql://user:password@host:5432/db`` or ``sqlite:///relative/file.db`` /
                        ``sqlite:////absolute/file.db``; default: ``sqlite:///institution_enhancement.db``
                        (an embedded file in the working directory)
``DATABASE_MIGRATE``    ``true`` (default): apply the pending migrations on start-up; ``false`` when a
                        separate step runs ``pyway -c pyway.conf migrate``
=====================  =============================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from neotool_common.errors import ConfigurationError

__all__ = ["DEFAULT_DATABASE_URL", "AppConfig", "Engine"]

DEFAULT_DATABASE_URL: Final = "sqlite:///institution_enhancement.db"
_SQLITE_PREFIX: Final = "sqlite:///"
_POSTGRES_SCHEMES: Final = ("postgresql", "postgres")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


class Engine(StrEnum):
    POSTGRES = "postgres"
    SQLITE = "sqlite"


@dataclass(frozen=True)
class AppConfig:
    """Where the enriched rows go. Validates itself; ``str()`` never shows the database password."""

    database_url: str = DEFAULT_DATABASE_URL
    migrate_on_start: bool = True

    def __post_init__(self) -> None:
        if self.engine is Engine.SQLITE and not self.sqlite_path:
            raise ConfigurationError("DATABASE_URL", "sqlite:/// needs a file path, e.g. sqlite:///institutions.db")

    @property
    def engine(self) -> Engine:
        if self.database_url.startswith(_SQLITE_PREFIX):
            return Engine.SQLITE
        if urlsplit(self.database_url).scheme in _POSTGRES_SCHEMES:
            return Engine.POSTGRES
        raise ConfigurationError("DATABASE_URL", "must start with postgresql:// or sqlite:///")

    @property
    def sqlite_path(self) -> str:
        """The embedded database file: ``sqlite:///a.db`` is ``a.db``, ``sqlite:////var/a.db`` is ``/var/a.db``."""
        return self.database_url.removeprefix(_SQLITE_PREFIX)

    @property
    def redacted_url(self) -> str:
        """The URL with any password replaced by ``***``, for logs."""
        parts = urlsplit(self.database_url)
        if not parts.password:
            return self.database_url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))

    def __repr__(self) -> str:
        return f"AppConfig(database_url={self.redacted_url!r}, migrate_on_start={self.migrate_on_start})"

    __str__ = __repr__

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppConfig:
        env = os.environ if env is None else env
        url = env.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL
        return cls(database_url=url, migrate_on_start=_flag(env, "DATABASE_MIGRATE", default=True))


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(name, f"must be true or false, not {value!r}")
