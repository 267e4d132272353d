"""The workers of the throughput modes: a thread pool for ``def`` handlers, one asyncio loop for ``async def``.

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

import asyncio
import contextlib
import inspect
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Hashable, Iterable, Sequence
from typing import Any

from neotool_common.concurrency.chains import Chains, Completion, Lane, Outcome, Work
from neotool_common.deadletter.headers import DlqReason
from neotool_common.errors import HandlerContractError, InvalidRecordError
from neotool_common.policies.retry import RetryPolicy
from neotool_common.policies.throughput import ThroughputPolicy
from neotool_common.records.message import Message

__all__ = ["MAX_UNIT", "AsyncDispatcher", "Dispatcher", "ThreadDispatcher"]

# The most records a worker takes at once for process(): enough to make a hand-over cheap per record.
MAX_UNIT = 64
# Records whose handler takes longer than this on average are taken one at a time: the hand-over (a few µs) is
# then cheap beside the work, and a slow record never holds back records that an idle worker could have run.
QUICK_RECORD_S = 0.00005


class _Unit:
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

    def _take(self, unit: _Unit) -> None:
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

    def _batch_wanted(self, unit: _Unit) -> bool:
        return self._process_batch is not None and not unit.works[0].alone

    def _give_back(self, unit: _Unit, index: int) -> None:
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

    def _succeeded(self, unit: _Unit) -> None:
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

    def _batch_failed(self, unit: _Unit, duration: float, exc: Exception) -> None:
        self._complete(Completion(Outcome.SPLIT, unit.works, 1, duration, exc))
        with self._lock:
            self._chains.put_back(unit.works, alone=True)

    def _fatal(self, unit: _Unit, exc: BaseException) -> None:
        self._broken = True
        unfinished = [work for work in unit.works if work not in unit.done]
        self._succeeded(unit)
        self._complete(Completion(Outcome.FATAL, unfinished, error=exc))


class ThreadDispatcher(Dispatcher):
    """``max_concurrency`` threads running plain ``def`` handlers; a backoff waits on the lane's halt event."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cond = threading.Condition(self._lock)
        self._running = False
        self._threads = [
            threading.Thread(target=self._work, name=f"neotool-worker-{n}", daemon=True)
            for n in range(self._policy.max_concurrency)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()
        self._running = True

    def submit(self, works: Sequence[Work]) -> None:
        with self._cond:
            put = self._chains.put
            for work in works:
                put(work)
            self._cond.notify()  # one worker; it wakes another if it leaves work behind

    def _wake_others(self) -> None:
        with self._cond:
            self._cond.notify()

    def close(self, timeout: float) -> bool:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if not self._running:  # run() failed before the workers started
            return True
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def _work(self) -> None:
        done: list[Hashable] = []  # the chains of the unit just run, released together with taking the next
        while True:
            unit = _Unit()
            with self._cond:
                self._chains.release(done)
                while not self._chains.ready or self._broken:
                    if self._closed or self._broken:
                        return
                    self._cond.wait()
                self._take(unit)
                if self._chains.ready and self._slow:
                    self._cond.notify()  # pass the baton
            try:
                if self._batch_wanted(unit):
                    self._fill(unit)
                    self._run_batch(unit)
                else:
                    self._run_records(unit)
            except BaseException as exc:  # noqa: BLE001 - handed to the poll thread, which re-raises it
                self._fatal(unit, exc)
                with self._cond:
                    self._chains.release(unit.claimed)
                return
            done = unit.claimed

    def _fill(self, unit: _Unit) -> None:
        """Wait up to ``batch_max_wait_s`` after the first record's arrival for the batch to fill up."""
        deadline = unit.works[0].received + self._policy.batch_max_wait_s
        limit = self._policy.batch_size
        while len(unit.works) < limit and (left := deadline - time.perf_counter()) > 0:
            with self._cond:
                before = len(unit.works)
                self._take(unit)
                if len(unit.works) == before:
                    if self._chains.ready:
                        return  # what is ready next must run by itself
                    self._cond.wait(left)

    def _run_batch(self, unit: _Unit) -> None:
        assert self._process_batch is not None
        live = [work for work in unit.works if not work.lane.halted.is_set()]
        if len(live) < len(unit.works):
            self._abandoned([work for work in unit.works if work.lane.halted.is_set()])
            unit.works = live
        if not live:
            return
        started = time.perf_counter()
        try:
            result = self._process_batch([work.message for work in live])
            if result is not None:
                check_not_awaitable(result, "process_batch()")
        except Exception as exc:  # noqa: BLE001 - every record of it is tried again by itself
            self._batch_failed(unit, time.perf_counter() - started, exc)
            return
        duration = time.perf_counter() - started
        self._complete(Completion(Outcome.OK, live, duration=duration))

    def _run_records(self, unit: _Unit) -> None:
        process, works = self._process, unit.works
        if works[0].retry_in:
            self._run_retries(works[0], works[0].retry_in)
            return
        for index, work in enumerate(works):
            if work.lane.halted.is_set():
                self._abandoned((work,))
                continue
            started = time.perf_counter()
            try:
                result = process(work.message)
                if result is not None:
                    check_not_awaitable(result, "process()")
            except Exception as exc:  # noqa: BLE001 - judged: dead-letter, or retry after a backoff
                backoff = self._failed(work, 1, time.perf_counter() - started, exc)
                if backoff is None:
                    continue
                self._succeeded(unit)
                self._give_back(unit, index)
                self._run_retries(work, backoff)
                return
            unit.done.append(work)
            unit.durations.append(time.perf_counter() - started)
        self._succeeded(unit)

    def _run_retries(self, work: Work, backoff: float) -> None:
        attempt = 1
        while True:
            if work.lane.halted.wait(backoff):
                self._abandoned((work,))
                return
            attempt += 1
            started = time.perf_counter()
            try:
                result = self._process(work.message)
                if result is not None:
                    check_not_awaitable(result, "process()")
            except Exception as exc:  # noqa: BLE001 - judged again
                failed_backoff = self._failed(work, attempt, time.perf_counter() - started, exc)
                if failed_backoff is None:
                    return
                backoff = failed_backoff
                continue
            duration = time.perf_counter() - started
            self._complete(Completion(Outcome.OK, (work,), attempt, durations=(duration,)))
            return


class AsyncDispatcher(Dispatcher):
    """``async def`` handlers on one asyncio loop in its own thread, ``max_concurrency`` of them at a time.

    The poll thread wakes the loop once per :meth:`submit`; a backoff is an ``asyncio`` wait that the lane's halt
    cuts short.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None  # made by start(): a loop never run is never closed
        self._thread = threading.Thread(target=self._serve, name="neotool-event-loop", daemon=True)
        self._started = threading.Event()
        self._idle: deque[asyncio.Future[None]] = deque()  # workers waiting for records, woken one at a time
        self._halts: dict[Lane, asyncio.Event] = {}

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread.start()
        self._started.wait()

    def run_coroutine(self, coroutine: Coroutine[Any, Any, Any], timeout: float | None) -> None:
        """Run ``coroutine`` on the loop (an ``async def`` setup or teardown) and wait for it."""
        if self._loop is None or not self._thread.is_alive():
            coroutine.close()
            raise RuntimeError("the event loop is not running")
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback`` on the loop, if it runs (before start() there is nothing to wake)."""
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already stopped
                self._loop.call_soon_threadsafe(callback, *args)

    def submit(self, works: Sequence[Work]) -> None:
        with self._lock:
            put = self._chains.put
            for work in works:
                put(work)
        self._call_soon(self._wake_one)

    def halt(self, lanes: Iterable[Lane]) -> list[Work]:
        lanes = list(lanes)
        dropped = super().halt(lanes)
        self._call_soon(self._wake_sleepers, lanes)
        return dropped

    def close(self, timeout: float) -> bool:
        with self._lock:
            self._closed = True
        self._call_soon(self._wake_all)
        if self._loop is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _serve(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        workers = [asyncio.create_task(self._work()) for _ in range(self._policy.max_concurrency)]
        self._started.set()
        await asyncio.gather(*workers)

    async def _idle_wait(self, timeout: float | None = None) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._idle.append(waiter)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter, timeout)

    def _wake_one(self) -> None:
        while self._idle:
            waiter = self._idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake_all(self) -> None:
        while self._idle:
            self._wake_one()

    _wake_others = _wake_one  # on the loop thread, like the workers

    def _wake_sleepers(self, lanes: list[Lane]) -> None:
        for lane in lanes:
            event = self._halts.pop(lane, None)
            if event is not None:
                event.set()

    async def _work(self) -> None:
        while not self._broken:
            unit = _Unit()
            with self._lock:
                self._take(unit)
                closed = self._closed
                more = bool(self._chains.ready)
            if not unit.works:
                if closed:
                    return
                await self._idle_wait()
                continue
            if more and self._slow:
                self._wake_one()  # pass the baton
            try:
                if self._batch_wanted(unit):
                    await self._fill(unit)
                    await self._run_batch(unit)
                else:
                    await self._run_records(unit)
            except BaseException as exc:  # noqa: BLE001 - handed to the poll thread, which re-raises it
                self._fatal(unit, exc)
            finally:
                with self._lock:
                    self._chains.release(unit.claimed)
                    more = bool(self._chains.ready)
                if more and self._slow:
                    self._wake_one()

    async def _fill(self, unit: _Unit) -> None:
        deadline = unit.works[0].received + self._policy.batch_max_wait_s
        while len(unit.works) < self._policy.batch_size and (left := deadline - time.perf_counter()) > 0:
            with self._lock:
                before = len(unit.works)
                self._take(unit)
                if len(unit.works) > before:
                    continue
                if self._chains.ready:
                    return  # what is ready next must run by itself
            await self._idle_wait(left)

    async def _run_batch(self, unit: _Unit) -> None:
        assert self._process_batch is not None
        live = [work for work in unit.works if not work.lane.halted.is_set()]
        if len(live) < len(unit.works):
            self._abandoned([work for work in unit.works if work.lane.halted.is_set()])
            unit.works = live
        if not live:
            return
        started = time.perf_counter()
        try:
            await self._process_batch([work.message for work in live])
        except Exception as exc:  # noqa: BLE001 - every record of it is tried again by itself
            self._batch_failed(unit, time.perf_counter() - started, exc)
            return
        duration = time.perf_counter() - started
        self._complete(Completion(Outcome.OK, live, duration=duration))

    async def _run_records(self, unit: _Unit) -> None:
        process, works = self._process, unit.works
        if works[0].retry_in:
            await self._run_retries(works[0], works[0].retry_in)
            return
        for index, work in enumerate(works):
            if work.lane.halted.is_set():
                self._abandoned((work,))
                continue
            started = time.perf_counter()
            try:
                await process(work.message)
            except Exception as exc:  # noqa: BLE001 - judged: dead-letter, or retry after a backoff
                backoff = self._failed(work, 1, time.perf_counter() - started, exc)
                if backoff is None:
                    continue
                self._succeeded(unit)
                self._give_back(unit, index)
                await self._run_retries(work, backoff)
                return
            unit.done.append(work)
            unit.durations.append(time.perf_counter() - started)
        self._succeeded(unit)

    async def _run_retries(self, work: Work, backoff: float) -> None:
        attempt = 1
        while True:
            if await self._backoff(work.lane, backoff):
                self._abandoned((work,))
                return
            attempt += 1
            started = time.perf_counter()
            try:
                await self._process(work.message)
            except Exception as exc:  # noqa: BLE001 - judged again
                failed_backoff = self._failed(work, attempt, time.perf_counter() - started, exc)
                if failed_backoff is None:
                    return
                backoff = failed_backoff
                continue
            duration = time.perf_counter() - started
            self._complete(Completion(Outcome.OK, (work,), attempt, durations=(duration,)))
            return

    async def _backoff(self, lane: Lane, seconds: float) -> bool:
        """Wait ``seconds``, or less if the lane is halted meanwhile; True when it was."""
        if lane.halted.is_set():
            return True
        event = self._halts.setdefault(lane, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        return lane.halted.is_set()


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
