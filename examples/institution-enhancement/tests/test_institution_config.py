"""DATABASE_URL and DATABASE_MIGRATE: defaults, both engines, one-line errors naming the variable."""

from __future__ import annotations

import pytest

from institution_enhancement.tasks.config import DEFAULT_DATABASE_URL, AppConfig, Engine
from neotool_common.errors import ConfigurationError


def test_defaults_to_an_embedded_sqlite_file_migrated_on_start() -> None:
    config = AppConfig.from_env({})
    assert (config.database_url, config.engine, config.migrate_on_start) == (DEFAULT_DATABASE_URL, Engine.SQLITE, True)
    assert config.sqlite_path == "institution_enhancement.db"


@pytest.mark.parametrize(
    ("url", "engine", "path"),
    [
        ("postgresql://app:pw@db:5432/app", Engine.POSTGRES, None),
        ("postgres://db/app", Engine.POSTGRES, None),
        ("sqlite:///data/x.db", Engine.SQLITE, "data/x.db"),
        ("sqlite:////var/lib/x.db", Engine.SQLITE, "/var/lib/x.db"),
    ],
)
def test_engine_and_path_from_the_url(url: str, engine: Engine, path: str | None) -> None:
    config = AppConfig.from_env({"DATABASE_URL": f"  {url} "})
    assert config.engine is engine
    if path is not None:
        assert config.sqlite_path == path


@pytest.mark.parametrize("url", ["mysql://db/app", "sqlite://relative.db", "sqlite:///", "db.sqlite"])
def test_unsupported_urls_name_the_variable(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        AppConfig.from_env({"DATABASE_URL": url})
    assert raised.value.setting == "DATABASE_URL"
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("value", "expected"), [("false", False), ("0", False), ("ON", True), ("", True)])
def test_database_migrate_flag(value: str, expected: bool) -> None:
    assert AppConfig.from_env({"DATABASE_MIGRATE": value}).migrate_on_start is expected


def test_a_bad_database_migrate_flag_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="DATABASE_MIGRATE: must be true or false"):
        AppConfig.from_env({"DATABASE_MIGRATE": "sometimes"})


def test_the_password_never_shows() -> None:
    config = AppConfig(database_url="postgresql://app:s3cr3t-pw@db:5432/app")
    assert "s3cr3t-pw" not in repr(config)
    assert "s3cr3t-pw" not in str(config)
    assert config.redacted_url == "postgresql://app:***@db:5432/app"
    assert AppConfig(database_url="postgresql://db/app").redacted_url == "postgresql://db/app"
