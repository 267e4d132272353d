"""A per-second allowance for the log lines that come once per record, with a summary of the ones held back.

A poison storm, or a downstream outage that sends every record through a retry tier, would otherwise write one
WARNING line per record: thousands a second, which cost the consumer more CPU than the records themselves and
bury everything else in the log. Each record's reason is in its DLQ copy's headers and in the metrics either way;
the log keeps the first ``per_second`` lines of each second in full and then one line that counts the rest by
kind. ``per_second`` 0 writes every line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

__all__ = ["LineBudget"]


class LineBudget:
    """``allow(kind)`` before writing a per-record line; ``tick(now)`` once per loop turn writes the summary."""

    __slots__ = ("_held", "_monotonic", "_per_second", "_summarize", "_used", "_window_end")

    def __init__(
        self, per_second: int, monotonic: Callable[[], float], summarize: Callable[[dict[str, int], float], None]
    ) -> None:
        self._per_second = per_second
        self._monotonic = monotonic
        self._summarize = summarize  # (lines held back by kind, the window's length in seconds)
        self._used = 0
        self._window_end = 0.0
        self._held: Counter[str] = Counter()

    def allow(self, kind: str) -> bool:
        if not self._per_second:
            return True
        now = self._monotonic()
        if now >= self._window_end:
            self.tick(now)
            self._window_end, self._used = now + 1.0, 0
        if self._used < self._per_second:
            self._used += 1
            return True
        self._held[kind] += 1
        return False

    def tick(self, now: float, *, final: bool = False) -> None:
        """Write the summary of a window that is over (every window, when ``final``)."""
        if self._held and (final or now >= self._window_end):
            held, self._held = dict(self._held), Counter()
            self._summarize(held, round(min(1.0, max(0.0, now - self._window_end + 1.0)), 3))
