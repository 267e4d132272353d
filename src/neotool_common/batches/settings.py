"""How batches are watched, from the environment; a bad value is a :class:`ConfigurationError` naming it.

=============================  =========================================================================
``BATCH_OVERDUE_MS``           a batch not settled this long after its first manifest is ``overdue`` (1 h)
``BATCH_ANNOUNCE``             ``true``: the runner announces batches that became settled (``false``)
``BATCH_WATCH_INTERVAL_MS``    how often the runner's batch watch reads the cluster (5000)
=============================  =========================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from neotool_common.errors import ConfigurationError

__all__ = ["BatchSettings"]

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True)
class BatchSettings:
    overdue_ms: int = 3_600_000
    announce: bool = False
    watch_interval_ms: int = 5_000

    def __post_init__(self) -> None:
        if self.overdue_ms < 1:
            raise ConfigurationError("BATCH_OVERDUE_MS", f"is {self.overdue_ms}; it must be 1 or more")
        if self.watch_interval_ms < 1:
            raise ConfigurationError("BATCH_WATCH_INTERVAL_MS", f"is {self.watch_interval_ms}; it must be 1 or more")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, announce: bool = False) -> BatchSettings:
        """``announce`` is the default when ``BATCH_ANNOUNCE`` is not set (a runner class may declare it)."""
        env = os.environ if env is None else env
        return cls(
            overdue_ms=_number(env, "BATCH_OVERDUE_MS", cls.overdue_ms),
            announce=_flag(env, "BATCH_ANNOUNCE", announce),
            watch_interval_ms=_number(env, "BATCH_WATCH_INTERVAL_MS", cls.watch_interval_ms),
        )


def _number(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigurationError(name, f"is {text!r}; it must be a whole number of milliseconds") from None


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    if name not in env:
        return default
    text = env[name].strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(name, f"is {env[name]!r}; it must be true or false")
