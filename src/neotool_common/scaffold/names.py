"""The names a new consumer is generated under, checked once, each error one line naming the argument.

=============  ======================================  =================================================
argument        rule                                    derived
=============  ======================================  =================================================
``NAME``        lowercase words joined by ``-``         package ``people_loader``, class ``PeopleLoaderConsumer``,
                (``people-loader``), at most 40 chars   console script ``people-loader-consumer``
``--topic``     ``{domain}.{entity}.v{N}`` (§4.1),      DLQ ``<topic>.dlq``
                never ``.dlq``
``--group``     letters, digits, ``.``, ``_``, ``-``    default: ``NAME``
=============  ======================================  =================================================
"""

from __future__ import annotations

import hashlib
import keyword
import re
import sys
from dataclasses import dataclass
from typing import Final

from neotool_common.errors import ConfigurationError

__all__ = ["ConsumerNames"]

_NAME: Final = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_TOPIC: Final = re.compile(r"^[a-z][a-z0-9_-]*\.[a-z][a-z0-9_-]*\.v[0-9]+$")
_GROUP: Final = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_MAX_NAME: Final = 40
# The package would shadow, or be shadowed by, a module every consumer imports.
_TAKEN: Final = frozenset({"neotool_common", "confluent_kafka", "pyway", "psycopg", "structlog", "pytest", "tests"})


@dataclass(frozen=True)
class ConsumerNames:
    """Every name of one generated consumer; raises :class:`ConfigurationError` for a bad one."""

    name: str
    topic: str
    group: str

    def __post_init__(self) -> None:
        if not _NAME.match(self.name) or len(self.name) > _MAX_NAME:
            raise ConfigurationError(
                "NAME", f"{self.name!r} must be lowercase words joined by '-', e.g. people-loader (40 chars at most)"
            )
        if self.name.endswith("-consumer"):
            raise ConfigurationError("NAME", f"{self.name!r}: leave out '-consumer', the console script adds it")
        package = self.package
        if keyword.iskeyword(package) or package in sys.stdlib_module_names or package in _TAKEN:
            raise ConfigurationError("NAME", f"{self.name!r} would make package {package!r}, which is taken")
        if not _TOPIC.match(self.topic) or self.topic.endswith(".dlq"):
            raise ConfigurationError(
                "--topic", f"{self.topic!r} must be {{domain}}.{{entity}}.v{{N}} in lowercase, e.g. people.ingest.v1"
            )
        if not _GROUP.match(self.group):
            raise ConfigurationError("--group", f"{self.group!r} may hold letters, digits, '.', '_' and '-' only")

    @classmethod
    def of(cls, name: str, topic: str, group: str | None = None) -> ConsumerNames:
        return cls(name=name, topic=topic, group=group or name)

    @property
    def package(self) -> str:
        return self.name.replace("-", "_")

    @property
    def class_name(self) -> str:
        return "".join(word.capitalize() for word in self.name.split("-")) + "Consumer"

    @property
    def lock_id(self) -> int:
        """A PostgreSQL advisory-lock key of the package's own (63 bits, stable across runs)."""
        return int.from_bytes(hashlib.sha256(self.package.encode()).digest()[:8], "big") >> 1
