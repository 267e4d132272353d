"""What both workers of the throughput modes share: the chains, taking units, halting lanes, judging outcomes.

The workers themselves are :mod:`~.thread_pool` (``def`` handlers) and :mod:`~.event_loop` (``async def``).

The poll thread hands records over with :meth:`Dispatcher.submit`; they wait in their :mod:`~.chains` until a
worker takes them. A worker takes a *unit*: for ``process_batch``, up to ``batch_size`` records (waiting up to
``batch_max_wait_s`` for it to fill); otherwise a share of what is queued (at most :data:`MAX_UNIT`), which it
runs one record after another, so that the cost of a hand-over is spread over many cheap records while slow
ones still spread over every worker. The poll thread plays no part between two records of a chain.

Every record ends in exactly one final :class:`~.chains.Completion` (``OK``, ``DEAD``, ``ABANDONED``, ``FATAL``),
plus one ``RETRY`` per failed attempt that will be tried again and a ``SPLIT`` per failed batch. A record that
fails and will be retried gives the rest of its unit back to the queue and keeps only its own chain: the
retries, and the backoffs between them, happen in the worker and hold back nothing else. A failed batch puts
its records back to be run one by one. Completions go to ``complete`` (thread-safe), for the poll thread.

Halting a :class:`~.chains.Lane` (revoke, shutdown) removes its queued records (returned to the caller, who
accounts for them), makes workers skip its taken-but-unstarted ones (``ABANDONED``), and cuts its backoffs
short; records already inside the handler run to their end.
"""

from __future__ import annotations

import inspect
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

from neotool_common.concurrency.chains import Chains, Completion, Lane, Outcome, Work
from neotool_common.deadletter.headers import DlqReason
from neotool_common.errors import HandlerContractError, InvalidRecordError
from neotool_common.policies.retry import RetryPolicy
from neotool_common.policies.throughput import ThroughputPolicy
from neotool_common.records.message import Message

__all__ = ["MAX_UNIT", "QUICK_RECORD_S", "Dispatcher", "Unit", "check_not_awaitable"]

# The most records a worker takes at once for process(): enough to make a hand-over cheap per record.
MAX_UNIT = 64
# Records whose handler takes longer than this on average are taken one at a time: the hand-over (a few µs) is
# then cheap beside the work, and a slow record never holds back records that an idle worker could have run.
QUICK_RECORD_S = 0.00005


class Unit:
    """The records a worker took, the chains it claimed, and the outcome of each record so far."""

    __slots__ = ("claimed", "done", "durations", "works")

    def __init__(self) -> None:
        self.works: list[Work] = []
        self.claimed: list[Hashable] = []
        self.done: list[Work] = []
        self.durations: list[float] = []


class Dispatcher:
    """What the thread pool and the asyncio loop share: the chains, taking units, halting lanes, judging failures.

    ``process`` handles one message; ``process_batch`` (or None) a list of them. ``complete`` receives every
    :class:`~.chains.Completion`, from the worker that produced it, and must be thread-safe.
    """

    def __init__(
        self,
        policy: ThroughputPolicy,
        retry: RetryPolicy,
        process: Callable[[Message], Any],
        process_batch: Callable[[list[Message]], Any] | None,
        complete: Callable[[Completion], None],
    ) -> None:
        self._policy = policy
        self._retry = retry
        self._process = process
        self._process_batch = process_batch
        self._complete = complete
        self._lock = threading.Lock()
        self._chains = Chains(policy.ordering)
        self._closed = False
        self._broken = False  # a handler raised a BaseException: no worker starts anything more
        self.mean_s = 1.0  # moving average of a record's handler time; records count as slow until measured

    @property
    def batching(self) -> bool:
        return self._process_batch is not None

    def start(self) -> None:
        raise NotImplementedError

    def submit(self, works: Sequence[Work]) -> None:
        """Queue records (from the poll thread)."""
        raise NotImplementedError

    def close(self, timeout: float) -> bool:
        """Stop the workers once their current unit is done; False if some were still busy after ``timeout``."""
        raise NotImplementedError

    def halt(self, lanes: Iterable[Lane]) -> list[Work]:
        """Halt ``lanes``: returns their queued records, which will never start nor report a completion."""
        halted = set(lanes)
        for lane in halted:
            lane.halted.set()
        with self._lock:
            return self._chains.drop(halted)

    # -- taking and giving back (the lock is held) --------------------------------------------------

    def _take(self, unit: Unit) -> None:
        if self._process_batch is not None:
            limit = self._policy.batch_size
        elif self._slow:
            limit = 1
        else:
            limit = MAX_UNIT
        self._chains.take(limit, unit.works, unit.claimed)

    @property
    def _slow(self) -> bool:
        """Slow records go one per worker, each waking the next; quick ones in units, to as few workers as
        keep up (under the GIL more threads would only take turns)."""
        return self.mean_s > QUICK_RECORD_S

    @property
    def quick(self) -> bool:
        """Records take the handler less than :data:`QUICK_RECORD_S` on average (as last measured)."""
        return self.mean_s <= QUICK_RECORD_S

    def note(self, duration: float) -> None:
        """A record ran ``duration`` seconds elsewhere (on the poll thread)."""
        self.mean_s = 0.8 * self.mean_s + 0.2 * duration

    @property
    def busy(self) -> dict[Hashable, deque[Work] | None]:
        """The chains with a record queued or running (read without the lock from the submitting thread only)."""
        return self._chains.busy

    @property
    def idle(self) -> Callable[[Lane, bytes | None], bool]:
        """Whether nothing of a record's chain is queued or running (ask from the submitting thread only)."""
        return self._chains.idle

    def _batch_wanted(self, unit: Unit) -> bool:
        return self._process_batch is not None and not unit.works[0].alone

    def _give_back(self, unit: Unit, index: int) -> None:
        """Record ``index`` of ``unit`` will be retried: the records after it go back to the queue, and every chain
        but its own is released, so that only its own chain waits for it."""
        own = unit.works[index].chain
        with self._lock:
            self._chains.put_back(unit.works[index + 1 :], alone=False)
            self._chains.release(key for key in unit.claimed if key != own)
            unit.claimed = [] if own is None else [own]
            unit.works = unit.works[: index + 1]
            more = bool(self._chains.ready)
        if more:
            self._wake_others()

    def _wake_others(self) -> None:
        raise NotImplementedError

    # -- judging outcomes ----------------------------------------------------------------------------

    def _abandoned(self, works: Sequence[Work]) -> None:
        self._complete(Completion(Outcome.ABANDONED, works))

    def _succeeded(self, unit: Unit) -> None:
        if unit.done:
            durations = unit.durations
            self.mean_s = 0.8 * self.mean_s + 0.2 * sum(durations) / len(durations)  # racy, and only a hint
            self._complete(Completion(Outcome.OK, unit.done, durations=durations))
            unit.done, unit.durations = [], []

    def _failed(self, work: Work, attempt: int, duration: float, exc: Exception) -> float | None:
        """Report a failed attempt; the backoff before the next one, or None when the record is done with."""
        if isinstance(exc, InvalidRecordError):
            self._complete(Completion(Outcome.DEAD, (work,), attempt, duration, exc, exc.reason))
            return None
        if attempt >= self._retry.max_attempts:
            self._complete(Completion(Outcome.DEAD, (work,), attempt, duration, exc, DlqReason.RETRIES_EXHAUSTED))
            return None
        backoff = self._retry.backoff(attempt)
        self._complete(Completion(Outcome.RETRY, (work,), attempt, duration, exc, backoff=backoff))
        return backoff

    def _batch_failed(self, unit: Unit, duration: float, exc: Exception) -> None:
        self._complete(Completion(Outcome.SPLIT, unit.works, 1, duration, exc))
        with self._lock:
            self._chains.put_back(unit.works, alone=True)

    def _fatal(self, unit: Unit, exc: BaseException) -> None:
        self._broken = True
        unfinished = [work for work in unit.works if work not in unit.done]
        self._succeeded(unit)
        self._complete(Completion(Outcome.FATAL, unfinished, error=exc))


def check_not_awaitable(result: Any, hook: str) -> None:
    """A plain ``def`` hook that returned an awaitable (a decorator around an ``async def``) did not run.

    Completing its records would drop them; a :class:`~neotool_common.errors.HandlerContractError` (not an
    ``Exception``, so no retry absorbs it) stops the runner instead.
    """
    if inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if close is not None:
            close()  # no "coroutine was never awaited" warning on top of this error
        raise HandlerContractError(
            f"{hook} returned an awaitable instead of running: declare it 'async def' (a decorator hid that)"
        )
