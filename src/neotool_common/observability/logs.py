"""Structured logs: one JSON object per line, secrets masked, trace ids from W3C ``traceparent`` headers.

Every event carries ``timestamp`` (ISO 8601, UTC), ``level`` (lower case), ``event`` and, from loggers made by
:func:`get_logger`, ``logger``; the runner adds record context such as ``topic``, ``partition``, ``offset``,
``batch_id``, ``record_id`` and ``trace_id``. Records of the standard library's ``logging`` go through the same
processors and renderer, with the logger's name as ``logger``.

Redaction happens before rendering, so no renderer and no test capture ever sees a secret:

- the value of any key that looks secret (``password``, ``secret``, ``token``, ``authorization``,
  ``sasl.password``, ``ssl.key.password``, ``api_key``...) becomes ``***``, in nested mappings too;
- every value given to :func:`register_secret` is replaced by ``***`` wherever it appears inside a string,
  exception text included.

Cost per call: levels below the configured one return at once (the bound logger's methods are no-ops); the
loggers are cached on first use; an emitted event runs through eight small processors.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, TextIO, cast

import orjson
import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from neotool_common.config.connection import REDACTED, Secret
from neotool_common.errors import ConfigurationError

__all__ = [
    "configure_logging",
    "get_logger",
    "register_secret",
    "reset_logging",
    "trace_id_from_traceparent",
]

LEVELS: Final = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
FORMATS: Final = ("json", "console")

_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)|secret|token|credential|authori[sz]ation|api[_.-]?key|private[_.-]?key|jaas|cookie",
    re.IGNORECASE,
)
# Deep enough for a configuration mapping inside an event; bounds the work on self-referencing values.
_MAX_DEPTH: Final = 6
_PLAIN: Final = frozenset({int, float, bool, type(None)})
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL)


@functools.lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


class _Redactor:
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


class _Output:
    """The last processor: renders the event, or hands it to ``testing.capture_logs`` while one is open."""

    def __init__(self) -> None:
        self.renderer: Processor | None = None
        self.captured: list[EventDict] | None = None

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> Any:
        captured = self.captured
        if captured is not None:
            captured.append(event_dict)
            raise structlog.DropEvent
        assert self.renderer is not None, "configure_logging() was not called"
        return self.renderer(logger, method_name, event_dict)


class _Handler(logging.StreamHandler[TextIO]):
    """Writes stdlib records through our processors; a record dropped by a processor is simply not written."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)
        except structlog.DropEvent:
            return


_redactor = _Redactor()
_output = _Output()
_handler: _Handler | None = None
_root_level_before: int | None = None


def register_secret(value: str | Secret | None) -> None:
    """Mask ``value`` wherever it appears in a logged string from now on. Empty values and ``None`` are ignored."""
    if value is not None:
        _redactor.register(value.reveal() if isinstance(value, Secret) else value)


def get_logger(name: str, **initial_values: Any) -> FilteringBoundLogger:
    """A structlog logger whose events carry ``logger=name`` and ``initial_values``.

    Binds lazily: the configuration in force at its first event applies, so it may be created (at module level,
    in a constructor) before :func:`configure_logging` runs. ``.bind()`` on it does not wait: it binds to the
    configuration in force at that moment.
    """
    return structlog.get_logger(name, **initial_values)  # type: ignore[no-any-return]


class _NamedWriteLogger(structlog.WriteLogger):
    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    """Like structlog's ``WriteLoggerFactory``, keeping the name given to ``get_logger`` for ``logger``."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        return _NamedWriteLogger(self._file, str(args[0]) if args else None)


def _add_logger_name(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")  # a stdlib record on its way through ProcessorFormatter
    name = record.name if record is not None else getattr(logger, "name", None)
    if name is not None:
        event_dict.setdefault("logger", name)
    return event_dict


class _CurrentStderr(io.TextIOBase):
    """Whatever ``sys.stderr`` is at each write: survives test runners and daemons that swap it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def _dumps(event_dict: EventDict, **_: Any) -> str:
    try:
        return orjson.dumps(event_dict, default=str).decode()
    except TypeError:  # integers beyond 64 bits, keys that are not strings: a log call must never fail
        return json.dumps(event_dict, default=str, ensure_ascii=False, skipkeys=True)


def _renderer(fmt: str, stream: TextIO) -> Processor:
    if fmt == "json":
        return structlog.processors.JSONRenderer(serializer=_dumps)
    return structlog.dev.ConsoleRenderer(colors=stream.isatty())


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]


def _final_processors() -> list[Processor]:
    # Exceptions become text before redaction, so a secret inside a traceback is masked too.
    return [structlog.processors.StackInfoRenderer(), structlog.processors.format_exc_info, _redactor, _output]


def _parse(level: str, fmt: str) -> tuple[int, str]:
    level_no = LEVELS.get(level.strip().upper())
    if level_no is None:
        raise ConfigurationError("LOG_LEVEL", f"{level!r} is not one of {', '.join(LEVELS)}")
    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        raise ConfigurationError("LOG_FORMAT", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    return level_no, fmt


def configure_logging(level: str = "INFO", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Send structlog events and stdlib ``logging`` records at ``level`` and above to ``stream`` (stderr).

    ``fmt`` is ``json`` (one object per line, for machines) or ``console`` (aligned key=value, for humans).
    Raises :class:`ConfigurationError` naming ``LOG_LEVEL`` or ``LOG_FORMAT``. Calling it again replaces the
    previous configuration; registered secrets stay registered.
    """
    level_no, fmt = _parse(level, fmt)
    stream = cast(TextIO, _CurrentStderr()) if stream is None else stream
    _output.renderer = _renderer(fmt, stream)
    structlog.configure(
        processors=[*_shared_processors(), *_final_processors()],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        context_class=dict,
        logger_factory=_NamedWriteLoggerFactory(stream),
        cache_logger_on_first_use=True,
    )
    _route_stdlib(level_no, stream)


def _route_stdlib(level_no: int, stream: TextIO) -> None:
    global _handler, _root_level_before  # noqa: PLW0603 - logging configuration is process-wide by nature
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    else:
        _root_level_before = root.level
    _handler = _Handler(stream)
    _handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_shared_processors(),
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_final_processors()],
        )
    )
    root.addHandler(_handler)
    root.setLevel(level_no)


def _unconfigure() -> None:
    global _handler, _root_level_before  # noqa: PLW0603 - see _route_stdlib
    structlog.reset_defaults()
    if _handler is not None:
        root = logging.getLogger()
        root.removeHandler(_handler)
        _handler.close()
        if _root_level_before is not None:
            root.setLevel(_root_level_before)
    _handler = _root_level_before = None
    _output.renderer = _output.captured = None


def reset_logging() -> None:
    """Undo :func:`configure_logging` and forget registered secrets; for tests."""
    _unconfigure()
    _redactor.clear()


@contextmanager
def _captured_events(level: str) -> Iterator[list[EventDict]]:
    """The engine of ``neotool_common.testing.logs.capture_logs``: divert processed events into a list.

    Under :func:`configure_logging` its level and stdlib routing stay; otherwise logging is configured at
    ``level`` for the duration and unconfigured afterwards (registered secrets are kept either way).
    """
    configured_here = _output.renderer is None
    if configured_here:
        configure_logging(level, "json", io.StringIO())
    captured: list[EventDict] = []
    previous, _output.captured = _output.captured, captured
    try:
        yield captured
    finally:
        _output.captured = previous
        if configured_here:
            _unconfigure()


def trace_id_from_traceparent(value: bytes | str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` header value, or ``None`` if it is absent or malformed.

    ``00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>`` in lower case; all-zero ids and version ``ff``
    are invalid; a version above ``00`` may carry further ``-``-separated fields, version ``00`` may not.
    """
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if value is None:
        return None
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id
