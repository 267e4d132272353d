"""How an event becomes a line: the logger's name, JSON or console rendering, and the sink tests capture from."""

from __future__ import annotations

import io
import json
import sys
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["CurrentStderr", "EventSink", "NamedWriteLoggerFactory", "add_logger_name", "renderer"]


class EventSink:
    """The last processor: renders the event, or hands it to ``testing.capture_logs`` while one is open."""

    def __init__(self) -> None:
        self.renderer: Processor | None = None
        self.captured: list[EventDict] | None = None

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> Any:
        captured = self.captured
        if captured is not None:
            captured.append(event_dict)
            raise structlog.DropEvent
        renderer = self.renderer
        if renderer is None:
            # Logging was configured and then undone (reset_logging(), in tests): a logger cached on first use
            # while it was configured still runs these processors, towards the stream that configuration wrote
            # to. Its events go nowhere, as they would have gone to that closed stream.
            raise structlog.DropEvent
        return renderer(logger, method_name, event_dict)


class NamedWriteLogger(structlog.WriteLogger):
    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


class NamedWriteLoggerFactory:
    """Like structlog's ``WriteLoggerFactory``, keeping the name given to ``get_logger`` for ``logger``."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> NamedWriteLogger:
        return NamedWriteLogger(self._file, str(args[0]) if args else None)


def add_logger_name(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    record = event_dict.get("_record")  # a stdlib record on its way through ProcessorFormatter
    name = record.name if record is not None else getattr(logger, "name", None)
    if name is not None:
        event_dict.setdefault("logger", name)
    return event_dict


class CurrentStderr(io.TextIOBase):
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


def renderer(fmt: str, stream: TextIO) -> Processor:
    if fmt == "json":
        return structlog.processors.JSONRenderer(serializer=_dumps)
    return structlog.dev.ConsoleRenderer(colors=stream.isatty())
