"""Throughput modes: how many records are in ``process()`` at once, and which of them must wait for which.

=========================  ===========  ===================================================================
field (class attribute)    environment  meaning
=========================  ===========  ===================================================================
``max_concurrency``        (1)          records (or batches) handled at the same time; 1 is the sequential
                                        runner, which never leaves the poll thread
``ordering``               (partition)  ``partition``: one record of a partition at a time, in offset order;
                                        ``key``: records with the same key in offset order, different keys
                                        in parallel; ``unordered``: any record in parallel with any other
``batch_size``             (100)        most records in one ``process_batch()`` call
``batch_max_wait_ms``      (20)         how long a batch waits to fill up once its first record is ready
``max_in_flight``          (auto)       records handed to workers and not yet complete before the runner
                                        pauses its partitions (0: ``max(1000, 4 x concurrency x batch)``)
=========================  ===========  ===================================================================

The environment (``MAX_CONCURRENCY``, ``ORDERING``, ``BATCH_SIZE``, ``BATCH_MAX_WAIT_MS``, ``MAX_IN_FLIGHT``)
overrides the consumer class. ``docs/throughput.md`` says when to choose which.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Ordering", "ThroughputPolicy"]


class Ordering(StrEnum):
    PARTITION = "partition"
    KEY = "key"
    UNORDERED = "unordered"


@dataclass(frozen=True)
class ThroughputPolicy:
    max_concurrency: int = 1
    ordering: Ordering = Ordering.PARTITION
    batch_size: int = 100
    batch_max_wait_s: float = 0.02
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "ordering", Ordering(self.ordering))
        if self.max_concurrency < 1 or self.batch_size < 1 or self.batch_max_wait_s < 0 or self.max_in_flight < 0:
            raise ValueError("need max_concurrency >= 1, batch_size >= 1, batch_max_wait_s >= 0, max_in_flight >= 0")

    def in_flight_limit(self, batching: bool) -> int:
        """Records handed out before the runner pauses its partitions: enough to keep every worker busy."""
        if self.max_in_flight:
            return self.max_in_flight
        return max(1000, 4 * self.max_concurrency * (self.batch_size if batching else 1))
