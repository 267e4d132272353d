"""Throttling and progress for long replays. Time is passed in, so tests drive a fake clock.

=====================  ================================================================================
:class:`Pacer`         at most ``rate`` records per second, evenly spaced; waiting ends early on stop
:class:`BarProgress`   one self-overwriting line on a terminal: bar, count, rate and ETA
:class:`LineProgress`  a plain line every ``interval_s`` seconds, for logs and pipes
=====================  ================================================================================
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TextIO

__all__ = ["BarProgress", "LineProgress", "NoProgress", "Pacer", "Progress", "format_duration"]

Clock = Callable[[], float]


@dataclass
class Pacer:
    """Spaces calls to :meth:`wait_turn` ``1/rate`` seconds apart (no limit when ``rate`` is ``None``).

    ``wait(seconds)`` blocks and returns ``True`` when the run should stop instead (``threading.Event.wait``).
    """

    rate: float | None
    clock: Clock
    wait: Callable[[float], bool]
    _next: float | None = None

    def wait_turn(self) -> bool:
        """Block until the next record may go; ``False`` if stopping was requested while waiting."""
        if self.rate is None:
            return True
        now = self.clock()
        due = now if self._next is None else max(self._next, now)
        if due > now and self.wait(due - now):
            return False
        self._next = due + 1.0 / self.rate
        return True


class Progress(Protocol):
    """Receives the replay's counters; implementations decide when and how to draw them."""

    def update(self, done: int, total: int, replayed: int) -> None: ...

    def close(self) -> None: ...


class NoProgress:
    def update(self, done: int, total: int, replayed: int) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class _Rate:
    clock: Clock
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def describe(self, done: int, total: int) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        per_second = done / elapsed
        left = max(total - done, 0)
        eta = format_duration(left / per_second) if per_second > 0 else "?"
        return f"{done}/{total} scanned, {per_second:.1f}/s, ETA {eta}"


@dataclass
class BarProgress:
    """A bar redrawn in place on ``stream`` (a terminal) at most every ``min_interval_s``."""

    stream: TextIO
    clock: Clock = time.monotonic
    width: int = 30
    min_interval_s: float = 0.2
    _rate: _Rate = field(init=False)
    _drawn_at: float | None = None

    def __post_init__(self) -> None:
        self._rate = _Rate(self.clock)

    def update(self, done: int, total: int, replayed: int) -> None:
        now = self.clock()
        if self._drawn_at is not None and now - self._drawn_at < self.min_interval_s and done < total:
            return
        self._drawn_at = now
        filled = self.width if total <= 0 else min(self.width, self.width * done // total)
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"[{bar}] {self._rate.describe(done, total)}, {replayed} replayed"
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn_at is not None:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class LineProgress:
    """A plain line every ``interval_s`` seconds (never on the first call), for logs and pipes."""

    stream: TextIO
    clock: Clock = time.monotonic
    interval_s: float = 5.0
    _rate: _Rate = field(init=False)
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        self._rate = _Rate(self.clock)
        self._last = self.clock()

    def update(self, done: int, total: int, replayed: int) -> None:
        now = self.clock()
        if now - self._last < self.interval_s:
            return
        self._last = now
        self.stream.write(f"progress: {self._rate.describe(done, total)}, {replayed} replayed\n")
        self.stream.flush()

    def close(self) -> None:
        pass


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
