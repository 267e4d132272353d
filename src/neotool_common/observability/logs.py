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

Cost per call: levels below the configured one return at once (the bound logger's methods are no-ops); a
module's logger (``get_logger(__name__)``) finds the configuration again at each call, so that one configured
later, or again, applies to it; an emitted event runs through eight small processors.

This module configures structlog and routes the standard library into it; masking lives in :mod:`~.redaction`,
rendering in :mod:`~.rendering`, trace ids in :mod:`~.traceparent`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, TextIO, cast

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor

from neotool_common.errors import ConfigurationError
from neotool_common.observability.redaction import redactor, register_secret
from neotool_common.observability.rendering import (
    CurrentStderr,
    EventSink,
    NamedWriteLoggerFactory,
    add_logger_name,
    renderer,
)
from neotool_common.observability.traceparent import trace_id_from_traceparent

__all__ = [
    "configure_logging",
    "get_logger",
    "logging_configured",
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


class _Handler(logging.StreamHandler[TextIO]):
    """Writes stdlib records through our processors; a record dropped by a processor is simply not written."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)
        except structlog.DropEvent:
            return


_output = EventSink()
_handler: _Handler | None = None
_root_level_before: int | None = None


def get_logger(name: str, **initial_values: Any) -> FilteringBoundLogger:
    """A structlog logger whose events carry ``logger=name`` and ``initial_values``.

    Binds lazily: the configuration in force at its first event applies, so it may be created (at module level,
    in a constructor) before :func:`configure_logging` runs. ``.bind()`` on it does not wait: it binds to the
    configuration in force at that moment.
    """
    return structlog.get_logger(name, **initial_values)  # type: ignore[no-any-return]


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]


def _final_processors() -> list[Processor]:
    # Exceptions become text before redaction, so a secret inside a traceback is masked too.
    return [structlog.processors.StackInfoRenderer(), structlog.processors.format_exc_info, redactor, _output]


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
    stream = cast(TextIO, CurrentStderr()) if stream is None else stream
    _output.renderer = renderer(fmt, stream)
    structlog.configure(
        processors=[*_shared_processors(), *_final_processors()],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        context_class=dict,
        logger_factory=NamedWriteLoggerFactory(stream),
        # Not cached: a module's logger (``structlog.get_logger(__name__)`` at import) cached on its first use
        # would keep that configuration's level, stream and processors after configure_logging() or
        # reset_logging() ran again. Bound loggers (the runner's, bound once at start) are unaffected.
        cache_logger_on_first_use=False,
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


def logging_configured() -> bool:
    """True between :func:`configure_logging` and :func:`reset_logging`."""
    return _output.renderer is not None


def reset_logging() -> None:
    """Undo :func:`configure_logging` and forget registered secrets; for tests."""
    _unconfigure()
    redactor.clear()


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
