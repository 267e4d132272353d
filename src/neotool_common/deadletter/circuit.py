"""Circuit breaker: stop a consumer whose records all go to the DLQ, instead of emptying the topic there."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from neotool_common.errors import CircuitOpenError

__all__ = ["CircuitBreaker", "CircuitBreakerPolicy"]


@dataclass(frozen=True)
class CircuitBreakerPolicy:
    """When dead-lettering counts as runaway.

    Trips when ``max_consecutive`` records in a row were dead-lettered (``CIRCUIT_MAX_CONSECUTIVE_DLQ``,
    default 100, 0 disables), or when more than ``max_ratio`` of the last ``window`` records were
    (``CIRCUIT_MAX_DLQ_RATIO`` default 0.5, ``CIRCUIT_WINDOW`` default 1000; judged once ``window`` records
    were seen; ratio 1 disables).
    """

    max_consecutive: int = 100
    max_ratio: float = 0.5
    window: int = 1000

    def __post_init__(self) -> None:
        if self.max_consecutive < 0 or not 0 < self.max_ratio <= 1 or self.window < 1:
            raise ValueError("need max_consecutive >= 0, 0 < max_ratio <= 1, window >= 1")


class CircuitBreaker:
    """Counts outcomes; ``observe`` is called once per poll batch, ``dead_lettered`` once per DLQ record."""

    def __init__(self, policy: CircuitBreakerPolicy) -> None:
        self.policy = policy
        self.consecutive = 0
        self._batches: deque[tuple[int, int]] = deque()
        self._seen = 0
        self._dead = 0

    def succeeded(self) -> None:
        self.consecutive = 0

    def dead_lettered(self) -> None:
        self.consecutive += 1
        limit = self.policy.max_consecutive
        if limit and self.consecutive >= limit:
            raise CircuitOpenError(f"{self.consecutive} records in a row went to the dead-letter queue")

    def observe(self, records: int, dead: int) -> None:
        """Add one batch's totals to the sliding window and trip if the DLQ share is too high."""
        if records == 0 or self.policy.max_ratio >= 1:
            return
        self._batches.append((records, dead))
        self._seen += records
        self._dead += dead
        while self._batches and self._seen - self._batches[0][0] >= self.policy.window:
            old_records, old_dead = self._batches.popleft()
            self._seen -= old_records
            self._dead -= old_dead
        if self._seen >= self.policy.window and self._dead > self.policy.max_ratio * self._seen:
            raise CircuitOpenError(
                f"{self._dead} of the last {self._seen} records went to the dead-letter queue "
                f"(limit {self.policy.max_ratio:.0%})"
            )
