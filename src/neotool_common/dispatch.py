"""The worker side of the throughput modes: ordering chains, a thread pool or an asyncio loop, and completions.

The poll thread hands records over as :class:`Work` (:meth:`Dispatcher.submit`). Each record joins the *chain*
of its ordering key — its partition, its partition and key, or none when unordered — and a chain runs one unit
at a time: a worker claims the chain, takes its first record (for ``process_batch``: the first records of as
many ready chains as fit in a batch), runs the handler with its retries, and releases the chain, whose next
record is then ready for any worker. The poll thread plays no part between two records of a chain.

Every record ends in exactly one final :class:`Completion`: ``OK``; ``DEAD`` (to be dead-lettered, with the
reason, the error and the attempts); ``ABANDONED`` (its lane was halted before it finished, so it will be
redelivered); or ``FATAL`` (a ``BaseException`` that must stop the runner). A failed attempt that will be tried
again also reports ``RETRY``, and a failed batch ``SPLIT``. Completions go to the ``complete`` callback (a
thread-safe queue the poll thread drains): offsets, metrics, logs and dead-letter writes stay on the poll thread.

A :class:`Lane` is one assigned partition's share of the work. Halting it (revoke, shutdown) removes its queued
records, stops the ones a worker has taken but not started, and cuts its retry backoffs short; records already
inside the handler run to their end.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from enum import Enum
from typing import Any

from neotool_common.errors import InvalidRecordError
from neotool_common.headers import DlqReason
from neotool_common.message import Message
from neotool_common.retry import RetryPolicy
from neotool_common.throughput import Ordering, ThroughputPolicy

__all__ = ["AsyncDispatcher", "Completion", "Dispatcher", "Lane", "Outcome", "ThreadDispatcher", "Work"]


class Outcome(Enum):
    OK = "ok"
    DEAD = "dead"
    ABANDONED = "abandoned"
    FATAL = "fatal"
    RETRY = "retry"  # not final: the record is tried again after ``backoff`` seconds
    SPLIT = "split"  # not final: the batch failed; its records are run one by one


FINAL = frozenset({Outcome.OK, Outcome.DEAD, Outcome.ABANDONED, Outcome.FATAL})


class Lane:
    """One assigned partition's share. ``halted`` is read by workers; the counters belong to the poll thread."""

    __slots__ = ("halted", "reported", "revoked", "state", "submitted")

    def __init__(self, state: Any) -> None:
        self.state = state
        self.halted = threading.Event()
        self.revoked = False  # completions arriving after this are ignored: the new owner redelivers
        self.submitted = 0
        self.reported = 0

    @property
    def outstanding(self) -> int:
        return self.submitted - self.reported


class Work:
    """One record handed to the workers. ``raw`` and ``received`` are the poll thread's, carried back to it."""

    __slots__ = ("alone", "lane", "message", "raw", "received")

    def __init__(self, lane: Lane, message: Message, raw: Any, received: float) -> None:
        self.lane = lane
        self.message = message
        self.raw = raw
        self.received = received
        self.alone = False  # its batch failed: run it by itself


class Completion:
    __slots__ = ("attempts", "backoff", "duration", "error", "outcome", "reason", "works")

    def __init__(
        self,
        outcome: Outcome,
        works: Sequence[Work],
        attempts: int = 1,
        duration: float = 0.0,
        error: BaseException | None = None,
        reason: str = "",
        backoff: float = 0.0,
    ) -> None:
        self.outcome = outcome
        self.works = works
        self.attempts = attempts
        self.duration = duration
        self.error = error
        self.reason = reason
        self.backoff = backoff


class _Chain:
    __slots__ = ("claimed", "key", "queued", "works")

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.works: deque[Work] = deque()
        self.claimed = False  # a worker runs its head
        self.queued = False  # it sits in the ready queue


class _Chains:
    """The ordering chains and the ready queue. Holds no lock: the dispatcher holds its own around every call."""

    def __init__(self, ordering: Ordering) -> None:
        self._chains: dict[Hashable, _Chain] = {}
        self.ready: deque[_Chain | Work] = deque()
        self._key_of: Callable[[Work], Hashable] = {
            Ordering.PARTITION: _partition_key,
            Ordering.KEY: _record_key,
            Ordering.UNORDERED: _no_key,
        }[ordering]

    def put(self, work: Work) -> None:
        key = self._key_of(work)
        if key is None:
            self.ready.append(work)
            return
        chain = self._chains.get(key)
        if chain is None:
            chain = self._chains[key] = _Chain(key)
        chain.works.append(work)
        if not (chain.claimed or chain.queued):
            chain.queued = True
            self.ready.append(chain)

    def take(self, limit: int, into: list[Work], claimed: list[_Chain]) -> None:
        """Move up to ``limit`` ready records into ``into``, claiming their chains; a lone record comes alone."""
        ready = self.ready
        while ready and len(into) < limit:
            item = ready[0]
            alone = item.works[0].alone if isinstance(item, _Chain) else item.alone
            if alone and into:
                return
            ready.popleft()
            if isinstance(item, _Chain):
                item.queued = False
                item.claimed = True
                claimed.append(item)
                works = item.works
                into.append(works.popleft())
                while not alone and works and len(into) < limit and not works[0].alone:
                    into.append(works.popleft())
            else:
                into.append(item)
            if alone:
                return

    def put_back(self, works: Sequence[Work]) -> None:
        """Return a failed batch's records to the heads of their (still claimed) chains, to be run one by one."""
        for work in reversed(works):
            work.alone = True
            key = self._key_of(work)
            if key is None:
                self.ready.appendleft(work)
            else:
                self._chains[key].works.appendleft(work)

    def release(self, claimed: Iterable[_Chain]) -> None:
        for chain in claimed:
            chain.claimed = False
            if chain.works:
                chain.queued = True
                self.ready.append(chain)
            else:
                del self._chains[chain.key]

    def drop(self, lanes: set[Lane]) -> list[Work]:
        """Remove the queued records of ``lanes``; claimed chains stay claimed until their unit is released."""
        dropped = [item for item in self.ready if isinstance(item, Work) and item.lane in lanes]
        for key, chain in list(self._chains.items()):
            dropped += [work for work in chain.works if work.lane in lanes]
            chain.works = deque(work for work in chain.works if work.lane not in lanes)
            if not chain.works and not chain.claimed:
                del self._chains[key]
        self.ready = deque(
            item for item in self.ready if (item.works if isinstance(item, _Chain) else item.lane not in lanes)
        )
        return dropped


def _partition_key(work: Work) -> Hashable:
    return work.lane


def _record_key(work: Work) -> Hashable:
    key = work.message.key
    return None if key is None else (work.lane, key)  # a record without a key waits for nothing


def _no_key(work: Work) -> Hashable:
    return None


class Dispatcher:
    """What the thread pool and the asyncio loop share: the chains, halting lanes, and judging failures.

    ``process`` handles one message; ``process_batch`` (or None) a list of them. ``complete`` receives every
    :class:`Completion`, from the worker that produced it, and must be thread-safe.
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
        self._limit = policy.batch_size if process_batch is not None else 1
        self._lock = threading.Lock()
        self._chains = _Chains(policy.ordering)
        self._closed = False
        self._broken = False  # a handler raised a BaseException: no worker starts anything more

    @property
    def batching(self) -> bool:
        return self._process_batch is not None

    def start(self) -> None:
        raise NotImplementedError

    def submit(self, works: Sequence[Work]) -> None:
        """Queue records (from the poll thread); each one's lane is not halted."""
        raise NotImplementedError

    def close(self, timeout: float) -> bool:
        """Stop the workers once their current unit is done; False if some were still busy after ``timeout``."""
        raise NotImplementedError

    def halt(self, lanes: Iterable[Lane]) -> list[Work]:
        """Halt ``lanes``: returns their queued records, which will never start (nor report a completion)."""
        halted = set(lanes)
        for lane in halted:
            lane.halted.set()
        with self._lock:
            return self._chains.drop(halted)

    def _unhalted(self, works: list[Work]) -> list[Work]:
        live = [work for work in works if not work.lane.halted.is_set()]
        if len(live) < len(works):
            self._complete(Completion(Outcome.ABANDONED, [work for work in works if work.lane.halted.is_set()]))
        return live

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

    def _batch_failed(self, works: list[Work], duration: float, exc: Exception) -> None:
        self._complete(Completion(Outcome.SPLIT, works, 1, duration, exc))
        with self._lock:
            self._chains.put_back(works)

    def _take_more(self, works: list[Work], claimed: list[_Chain]) -> bool:
        """Add ready records to a batch being filled (the lock is held); True if any were added."""
        before = len(works)
        self._chains.take(self._limit, works, claimed)
        return len(works) > before

    def _release(self, claimed: list[_Chain]) -> bool:
        """Release a unit's chains; True when records are ready for another worker."""
        with self._lock:
            self._chains.release(claimed)
            return bool(self._chains.ready)


class ThreadDispatcher(Dispatcher):
    """``max_concurrency`` threads running plain ``def`` handlers; a backoff waits on the lane's halt event."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cond = threading.Condition(self._lock)
        self._threads = [
            threading.Thread(target=self._work, name=f"neotool-worker-{n}", daemon=True)
            for n in range(self._policy.max_concurrency)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def submit(self, works: Sequence[Work]) -> None:
        with self._cond:
            put = self._chains.put
            for work in works:
                put(work)
            self._cond.notify(len(works))

    def close(self, timeout: float) -> bool:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def _work(self) -> None:
        while True:
            works: list[Work] = []
            claimed: list[_Chain] = []
            with self._cond:
                while not self._chains.ready or self._broken:
                    if self._closed or self._broken:
                        return
                    self._cond.wait()
                self._chains.take(self._limit, works, claimed)
                if self._chains.ready:
                    self._cond.notify()  # pass the baton: more is ready than this worker took
            if self._limit > 1 and not works[0].alone:
                self._fill(works, claimed)
            try:
                fatal = self._run(works)
            finally:
                with self._cond:
                    self._chains.release(claimed)
                    if self._chains.ready:
                        self._cond.notify()
            if fatal:
                return

    def _fill(self, works: list[Work], claimed: list[_Chain]) -> None:
        """Wait up to ``batch_max_wait_s`` after the first record's arrival for the batch to fill up."""
        deadline = works[0].received + self._policy.batch_max_wait_s
        while len(works) < self._limit and (left := deadline - time.perf_counter()) > 0:
            with self._cond:
                if not self._take_more(works, claimed):
                    if self._chains.ready:
                        return  # what is ready next must run by itself
                    self._cond.wait(left)

    def _run(self, works: list[Work]) -> bool:
        """Run one unit; True when a ``BaseException`` must stop this worker (the poll thread stops the runner)."""
        live = self._unhalted(works)
        if not live:
            return False
        try:
            if self._process_batch is not None and not live[0].alone:
                self._run_batch(live, self._process_batch)
            else:
                self._run_one(live[0])
        except BaseException as exc:  # noqa: BLE001 - handed to the poll thread, which re-raises it
            self._broken = True
            self._complete(Completion(Outcome.FATAL, live, error=exc))
            return True
        return False

    def _run_one(self, work: Work) -> None:
        attempt = 1
        while True:
            started = time.perf_counter()
            try:
                self._process(work.message)
            except Exception as exc:  # noqa: BLE001 - judged: dead-letter, or retry after a backoff
                backoff = self._failed(work, attempt, time.perf_counter() - started, exc)
                if backoff is None:
                    return
                if work.lane.halted.wait(backoff):
                    self._complete(Completion(Outcome.ABANDONED, (work,), attempt))
                    return
                attempt += 1
                continue
            self._complete(Completion(Outcome.OK, (work,), attempt, time.perf_counter() - started))
            return

    def _run_batch(self, works: list[Work], process_batch: Callable[[list[Message]], Any]) -> None:
        started = time.perf_counter()
        try:
            process_batch([work.message for work in works])
        except Exception as exc:  # noqa: BLE001 - every record of it is tried again by itself
            self._batch_failed(works, time.perf_counter() - started, exc)
            return
        self._complete(Completion(Outcome.OK, works, 1, time.perf_counter() - started))


class AsyncDispatcher(Dispatcher):
    """``async def`` handlers on one asyncio loop in its own thread, ``max_concurrency`` of them at a time.

    The poll thread wakes the loop once per :meth:`submit`; a backoff is an ``asyncio`` wait that the lane's halt
    cuts short.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="neotool-event-loop", daemon=True)
        self._started = threading.Event()
        self._ready: asyncio.Event | None = None
        self._halts: dict[Lane, asyncio.Event] = {}

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def submit(self, works: Sequence[Work]) -> None:
        with self._lock:
            put = self._chains.put
            for work in works:
                put(work)
        self._loop.call_soon_threadsafe(self._wake)

    def halt(self, lanes: Iterable[Lane]) -> list[Work]:
        lanes = list(lanes)
        dropped = super().halt(lanes)
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake_sleepers, lanes)
        return dropped

    def close(self, timeout: float) -> bool:
        with self._lock:
            self._closed = True
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._ready = asyncio.Event()
        workers = [asyncio.create_task(self._work()) for _ in range(self._policy.max_concurrency)]
        self._started.set()
        await asyncio.gather(*workers)

    def _wake(self) -> None:
        assert self._ready is not None
        self._ready.set()

    def _wake_sleepers(self, lanes: list[Lane]) -> None:
        for lane in lanes:
            event = self._halts.pop(lane, None)
            if event is not None:
                event.set()

    async def _work(self) -> None:
        ready = self._ready
        assert ready is not None
        while True:
            works: list[Work] = []
            claimed: list[_Chain] = []
            if self._broken:
                return
            with self._lock:
                self._chains.take(self._limit, works, claimed)
                closed = self._closed
            if not works:
                if closed:
                    return
                ready.clear()
                await ready.wait()
                continue
            if self._limit > 1 and not works[0].alone:
                await self._fill(works, claimed)
            try:
                fatal = await self._run(works)
            finally:
                if self._release(claimed):
                    ready.set()
            if fatal:
                return

    async def _fill(self, works: list[Work], claimed: list[_Chain]) -> None:
        ready = self._ready
        assert ready is not None
        deadline = works[0].received + self._policy.batch_max_wait_s
        while len(works) < self._limit and (left := deadline - time.perf_counter()) > 0:
            with self._lock:
                if self._take_more(works, claimed):
                    continue
                if self._chains.ready:
                    return  # what is ready next must run by itself
            ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), left)

    async def _run(self, works: list[Work]) -> bool:
        live = self._unhalted(works)
        if not live:
            return False
        try:
            if self._process_batch is not None and not live[0].alone:
                await self._run_batch(live, self._process_batch)
            else:
                await self._run_one(live[0])
        except BaseException as exc:  # noqa: BLE001 - handed to the poll thread, which re-raises it
            self._broken = True
            self._complete(Completion(Outcome.FATAL, live, error=exc))
            return True
        return False

    async def _run_one(self, work: Work) -> None:
        attempt = 1
        while True:
            started = time.perf_counter()
            try:
                await self._process(work.message)
            except Exception as exc:  # noqa: BLE001 - judged: dead-letter, or retry after a backoff
                backoff = self._failed(work, attempt, time.perf_counter() - started, exc)
                if backoff is None:
                    return
                if await self._backoff(work.lane, backoff):
                    self._complete(Completion(Outcome.ABANDONED, (work,), attempt))
                    return
                attempt += 1
                continue
            self._complete(Completion(Outcome.OK, (work,), attempt, time.perf_counter() - started))
            return

    async def _run_batch(self, works: list[Work], process_batch: Callable[[list[Message]], Any]) -> None:
        started = time.perf_counter()
        try:
            await process_batch([work.message for work in works])
        except Exception as exc:  # noqa: BLE001 - every record of it is tried again by itself
            self._batch_failed(works, time.perf_counter() - started, exc)
            return
        self._complete(Completion(Outcome.OK, works, 1, time.perf_counter() - started))

    async def _backoff(self, lane: Lane, seconds: float) -> bool:
        """Wait ``seconds``, or less if the lane is halted meanwhile; True when it was."""
        if lane.halted.is_set():
            return True
        event = self._halts.setdefault(lane, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        return lane.halted.is_set()
