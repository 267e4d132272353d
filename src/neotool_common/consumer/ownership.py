"""Which partitions this member owns, as threads beside the poll loop see them.

The poll loop changes the assignment inside ``consume()`` (:mod:`.rebalance`); a thread that acts as the
owner of a partition (the batch watch announces for partition 0's owner) must not act on an assignment that
changed under it. A rebalance callback runs inside :meth:`Ownership.changing`; another thread takes a
:meth:`~Ownership.snapshot` and acts only inside :meth:`~Ownership.unchanged_since`, which a rebalance waits for.
So what an owner does is finished before its partitions move on, and a new owner starts after it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

__all__ = ["Ownership"]

Key = tuple[str, int]


class Ownership:
    def __init__(self, partitions: Callable[[], Iterable[Key]]) -> None:
        self._partitions = partitions
        self._lock = threading.RLock()  # the poll thread may read the assignment inside its own callback
        self._epoch = 0

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Held by a rebalance callback for as long as it changes the assignment."""
        with self._lock:
            self._epoch += 1
            yield

    def snapshot(self) -> tuple[int, frozenset[Key]]:
        """The assignment now, and the count of changes it is the result of."""
        with self._lock:
            return self._epoch, frozenset(self._partitions())

    @contextmanager
    def unchanged_since(self, epoch: int) -> Iterator[bool]:
        """True when no rebalance began since ``snapshot()`` returned ``epoch``; none begins until the block ends."""
        with self._lock:
            yield self._epoch == epoch
