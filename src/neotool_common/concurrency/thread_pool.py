"""The thread pool of the throughput modes: ``max_concurrency`` threads running plain ``def`` handlers."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Sequence
from typing import Any

from neotool_common.concurrency.chains import Completion, Outcome, Work
from neotool_common.concurrency.dispatcher import Dispatcher, Unit, check_not_awaitable

__all__ = ["ThreadDispatcher"]


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
            unit = Unit()
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

    def _fill(self, unit: Unit) -> None:
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

    def _run_batch(self, unit: Unit) -> None:
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

    def _run_records(self, unit: Unit) -> None:
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
