"""Retry policy: how often a failing record is tried again, and how long to wait between attempts."""

from __future__ import annotations

from dataclasses import dataclass, field

from tenacity import RetryCallState, Retrying, wait_exponential, wait_random
from tenacity.wait import wait_base

__all__ = ["RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by ``max_attempts`` (the first try counts as attempt 1).

    ==================  =======================================  =================================
    field               meaning                                  environment (runner)
    ==================  =======================================  =================================
    max_attempts        tries before ``retries_exhausted``       ``RETRY_MAX_ATTEMPTS`` (5)
    initial_backoff_s   wait after the first failure             ``RETRY_BACKOFF_INITIAL_MS`` (200)
    max_backoff_s       cap on any single wait                   ``RETRY_BACKOFF_MAX_MS`` (30000)
    multiplier          growth per attempt                       (2)
    jitter_s            up to this much random extra per wait    (initial_backoff_s)
    ==================  =======================================  =================================

    The runner never sleeps through a backoff: it pauses the record's partition and keeps polling, so a
    long backoff cannot exceed ``max.poll.interval.ms`` and get the member evicted from its group.
    """

    max_attempts: int = 5
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 30.0
    multiplier: float = 2.0
    jitter_s: float | None = None
    _wait: wait_base = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= self.initial_backoff_s <= self.max_backoff_s:
            raise ValueError("need 0 <= initial_backoff_s <= max_backoff_s")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")

        jitter = self.initial_backoff_s if self.jitter_s is None else self.jitter_s
        wait = wait_exponential(multiplier=self.initial_backoff_s, max=self.max_backoff_s, exp_base=self.multiplier)
        object.__setattr__(self, "_wait", wait + wait_random(0, jitter) if jitter else wait)

    def backoff(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt number ``failed_attempt`` (1-based) failed."""
        state = RetryCallState(_RETRYING, None, (), {})
        state.attempt_number = failed_attempt
        return min(self.max_backoff_s, float(self._wait(state)))


_RETRYING = Retrying()
