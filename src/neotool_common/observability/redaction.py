"""Secrets kept out of logs: secret-looking keys masked, and every registered secret value wherever it appears."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, Final

from structlog.typing import EventDict, WrappedLogger

from neotool_common.config.connection import REDACTED, Secret

__all__ = ["Redactor", "redactor", "register_secret"]

_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)|secret|token|credential|authori[sz]ation|api[_.-]?key|private[_.-]?key|jaas|cookie",
    re.IGNORECASE,
)
# Deep enough for a configuration mapping inside an event; bounds the work on self-referencing values.
_MAX_DEPTH: Final = 6
_PLAIN: Final = frozenset({int, float, bool, type(None)})


@functools.lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


class Redactor:
    """Masks secret-looking keys and registered secret values; a processor. Registration swaps one pattern."""

    def __init__(self) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None

    def register(self, value: str) -> None:
        if not value or value in self._secrets:
            return
        secrets = self._secrets | {value}
        # Longest first, so a secret that contains another is masked whole.
        alternatives = "|".join(re.escape(s) for s in sorted(secrets, key=len, reverse=True))
        self._secrets, self._pattern = secrets, re.compile(alternatives)

    def clear(self) -> None:
        self._secrets, self._pattern = frozenset(), None

    def mask(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(REDACTED, text)

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        # The hot path: structlog hands every event a fresh dict, so its values are replaced in place and
        # plain strings and numbers cost one type check each.
        pattern = self._pattern
        for key, value in event_dict.items():
            if _is_secret_key(key):
                event_dict[key] = REDACTED
            elif type(value) is str:
                if pattern is not None:
                    event_dict[key] = pattern.sub(REDACTED, value)
            elif type(value) not in _PLAIN:
                event_dict[key] = self._redact_value(value, 1)
        return event_dict

    def _redact_mapping(self, mapping: Mapping[Any, Any], depth: int) -> dict[Any, Any]:
        """A redacted copy: nested mappings belong to the caller."""
        return {
            key: REDACTED if _is_secret_key(str(key)) else self._redact_value(value, depth + 1)
            for key, value in mapping.items()
        }

    def _redact_value(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.mask(value)
        if value is None or isinstance(value, bool | int | float) or depth > _MAX_DEPTH:
            return value
        if isinstance(value, Mapping):
            return self._redact_mapping(value, depth)
        if isinstance(value, list | tuple):
            return [self._redact_value(item, depth + 1) for item in value]
        return self._redact_object(value)

    def _redact_object(self, value: Any) -> Any:
        if self._pattern is None:
            return value
        text = str(value)
        masked = self.mask(text)
        return value if masked == text else masked


# The one the logging configuration runs: secrets registered anywhere are masked everywhere.
redactor = Redactor()


def register_secret(value: str | Secret | None) -> None:
    """Mask ``value`` wherever it appears in a logged string from now on. Empty values and ``None`` are ignored."""
    if value is not None:
        redactor.register(value.reveal() if isinstance(value, Secret) else value)
