"""librdkafka's own log lines as structured events, each repeated line rate-limited into one with a count.

Every client made from a :class:`~neotool_common.config.connection.KafkaConnection` gets :data:`CLIENT_LOG` as
confluent-kafka's ``logger``: librdkafka then queues its log lines (``%3|…|FAIL|…``, ``%4|…|GETPID|…``) instead
of writing them to stderr, and the client's ``poll()``/``consume()`` hands them here. They become events of the
``librdkafka`` logger with a ``level``, the ``facility`` and the ``client``, rendered as JSON like every other
line once :func:`~neotool_common.observability.logs.configure_logging` ran (before, the standard library's
``logging`` gets them). Lines a client logs after its last poll are dropped with the client.

librdkafka also reports each of its errors to the client's ``error_cb``, which the project's clients log (a
fatal one as the reason a run ends): its own lines are their detail and are written at WARNING at most, with
the level librdkafka gave them as ``librdkafka_level``, so that one ERROR line names each failure.

A line repeated by the same client under the same facility and level is written once, then at most once per
:data:`REPEAT_WINDOW_S` with ``repeats`` (how many were folded into it) and ``for_s`` (since the first one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final

import structlog

__all__ = ["CLIENT_LOG", "REPEAT_WINDOW_S", "ClientLog", "Repeat", "RepeatLimiter"]

REPEAT_WINDOW_S: Final = 30.0
# Keys remembered at most; past it they are forgotten (and a repeat is written once more).
_MAX_KEYS: Final = 1024


@dataclass
class _Seen:
    first: float
    last: float
    written: float
    folded: int = 0


@dataclass(frozen=True)
class Repeat:
    """An occurrence to write: ``repeats`` occurrences were folded into it, the first ``for_s`` seconds ago."""

    repeats: int
    for_s: float


class RepeatLimiter:
    """Admits the first occurrence of a key, then one per window carrying the count of the ones it held back.

    A key unseen for a whole window starts afresh. Thread-safe: clients log from whichever thread polls them.
    """

    def __init__(self, window_s: float = REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._window_s = window_s
        self._clock = clock
        self._seen: dict[Hashable, _Seen] = {}
        self._lock = threading.Lock()

    def admit(self, key: Hashable) -> Repeat | None:
        """``None``: fold this occurrence into the next written one."""
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is None or now - seen.last >= self._window_s:
                if len(self._seen) >= _MAX_KEYS:
                    self._seen.clear()
                self._seen[key] = _Seen(first=now, last=now, written=now)
                return Repeat(repeats=1, for_s=0.0)
            seen.last = now
            if now - seen.written < self._window_s:
                seen.folded += 1
                return None
            repeat = Repeat(repeats=seen.folded + 1, for_s=now - seen.first)
            seen.written, seen.folded = now, 0
            return repeat


class ClientLog:
    """What confluent-kafka's ``logger`` setting takes: an object with ``log(level, msg, *args)``."""

    def __init__(self, name: str = "librdkafka", limiter: RepeatLimiter | None = None) -> None:
        self._name = name
        self._limiter = RepeatLimiter() if limiter is None else limiter
        self._stdlib = logging.getLogger(name)

    def log(self, level: int, msg: str, *args: Any) -> None:
        """confluent-kafka calls ``log(level, "%s [%s] %s", facility, client name, text)``."""
        if len(args) == 3:  # the three arguments of confluent-kafka's call
            facility, client, text = (str(arg) for arg in args)
        else:
            facility, client, text = "", "", (msg % args if args else msg)
        repeat = self._limiter.admit((client, facility, level))
        if repeat is None:
            return
        fields: dict[str, Any] = {"facility": facility, "client": client}
        if level > logging.WARNING:
            fields["librdkafka_level"] = logging.getLevelName(level).lower()
            level = logging.WARNING
        if repeat.repeats > 1:
            fields.update(repeats=repeat.repeats, for_s=round(repeat.for_s))
        if structlog.is_configured():
            structlog.get_logger(self._name).log(level, text, **fields)
        else:
            self._stdlib.log(level, "%s [%s] %s", facility, client, text)


# The one every client of the project gets.
CLIENT_LOG: Final = ClientLog()
