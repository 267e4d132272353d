"""Log capture for tests: the events exactly as the runtime would emit them, secrets already masked.

::

    from neotool_common.testing.logs import capture_logs

    with capture_logs() as events:
        runner.run_once()
    assert {"event": "record.dead_lettered", "topic": "people.ingest.v1"}.items() <= events[0].items()

Each event is a dict with ``timestamp``, ``level``, ``event`` and the bound context, after the same processors
as production (redaction included) and before rendering. Events from the standard library's ``logging`` are
captured too. Loggers made before the capture started are captured as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from structlog.typing import EventDict

from neotool_common.observability import logs

__all__ = ["capture_logs"]


@contextmanager
def capture_logs(level: str = "DEBUG") -> Iterator[list[EventDict]]:
    """Collect events instead of writing them, for the duration of the ``with`` block.

    Under :func:`~neotool_common.observability.logs.configure_logging` its level applies; otherwise events at
    ``level`` and above are captured and logging is left unconfigured afterwards.
    """
    with logs._captured_events(level) as events:
        yield events
