"""The asyncio loop of the throughput modes: ``async def`` handlers on one event loop in its own thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

from neotool_common.concurrency.chains import Completion, Lane, Outcome, Work
from neotool_common.concurrency.dispatcher import Dispatcher, Unit

__all__ = ["AsyncDispatcher"]


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
            unit = Unit()
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

    async def _fill(self, unit: Unit) -> None:
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

    async def _run_batch(self, unit: Unit) -> None:
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

    async def _run_records(self, unit: Unit) -> None:
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
