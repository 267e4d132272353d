"""The runner's side of the throughput modes: records go out to a dispatcher, completions come back to the poll thread.

Every method runs on the poll thread, which keeps what it owned in the sequential runner: offsets, metrics, logs,
dead-letter writes, commits. A record is *begun* in its partition's offsets in offset order and *finished* by its
completion. Once ``max_in_flight`` records are out, every partition is paused (``IN_FLIGHT_LIMIT``) until half came
back. Revoke and shutdown drop queued records, cut backoffs short and wait (bounded) for records inside the
handler; completions of a revoked partition are ignored. ``docs/throughput.md`` has the whole contract.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from neotool_common.concurrency.chains import Completion, Lane, Outcome, Work
from neotool_common.concurrency.dispatch import (
    QUICK_RECORD_S,
    AsyncDispatcher,
    Dispatcher,
    ThreadDispatcher,
)
from neotool_common.consumer.completions import CompletionReports
from neotool_common.consumer.context import RunContext
from neotool_common.consumer.flow import PartitionFlow, PauseReason
from neotool_common.consumer.handlers import Handlers, one_by_one
from neotool_common.consumer.partition import PartitionState
from neotool_common.deadletter.headers import DlqReason
from neotool_common.errors import CircuitOpenError
from neotool_common.records.message import Message

if TYPE_CHECKING:
    from neotool_common.consumer.deadletters import DeadLetters
    from neotool_common.consumer.handling import FailurePolicy

    RunHere = Callable[[PartitionState, Any, Message, float, FailurePolicy], float | None]

__all__ = ["ParallelProcessing"]

# Records read from one fetch are handed to the workers in slices of this size, so they start early.
HANDOFF_SLICE = 64
# With the in-flight bound reached, how long the poll thread waits for completions before pausing partitions.
BUSY_WAIT_S = 0.005


class ParallelProcessing:
    """Owns the dispatcher of one runner while it runs."""

    def __init__(
        self, ctx: RunContext, dispatcher: Dispatcher, completions: queue.SimpleQueue[Any], inline: bool
    ) -> None:
        self._ctx = ctx
        self._inline = inline  # quick plain def records may run on the poll thread
        self._chain_idle = dispatcher.idle
        self._busy = dispatcher.busy
        self._dispatcher = dispatcher
        self._completions: queue.SimpleQueue[Completion] = completions
        self._lanes: dict[PartitionState, Lane] = {}
        self._pending: list[Work] = []
        self._holding = False  # every partition is paused for the in-flight bound
        self._deferred: BaseException | None = None
        self._limit = ctx.settings.throughput.in_flight_limit(batching=dispatcher.batching)
        self.in_flight = 0

    @classmethod
    def create(cls, ctx: RunContext, handlers: Handlers) -> ParallelProcessing | None:
        """The parallel path a runner needs, or None for the sequential runner (one plain ``process()``)."""
        settings = ctx.settings
        has_batch = handlers.process_batch is not None
        if settings.throughput.max_concurrency == 1 and not has_batch and not handlers.is_async:
            return None
        process = handlers.process
        if not handlers.has_process:  # the per-record fallback of a failed batch is a batch of one
            assert handlers.process_batch is not None
            process = one_by_one(handlers.process_batch, handlers.is_async)
        completions: queue.SimpleQueue[Completion] = queue.SimpleQueue()
        factory = AsyncDispatcher if handlers.is_async else ThreadDispatcher
        dispatcher = factory(settings.throughput, settings.retry, process, handlers.process_batch, completions.put)
        return cls(ctx, dispatcher, completions, inline=not handlers.is_async and not has_batch)

    def bind(self, flow: PartitionFlow, dead_letters: DeadLetters, run_here: RunHere) -> None:
        """The engine's parts made once the clients exist; ``run_here`` runs a quick record on the poll thread."""
        self._run = run_here
        self._flow = flow
        self._dead_letter = dead_letters.route
        self._reports = CompletionReports(self._ctx, dead_letters.route)

    def run_coroutine(self, coroutine: Coroutine[Any, Any, Any], timeout: float | None = None) -> None:
        """Run an ``async def`` hook (setup, teardown) on the handlers' event loop and wait for it."""
        assert isinstance(self._dispatcher, AsyncDispatcher), "the face only allows async hooks with async handlers"
        self._dispatcher.run_coroutine(coroutine, timeout)

    def start(self) -> None:
        self._dispatcher.start()

    # -- the poll loop ---------------------------------------------------------------------------

    def submit(self, state: PartitionState, msg: Any, message: Message, received: float) -> None:
        """Hand a validated record to the workers, or run it here when it is quick and its chain is idle."""
        lane = self._lanes.get(state)
        if lane is None:
            lane = self._lanes[state] = Lane(state)
        if self._inline and self._dispatcher.mean_s <= QUICK_RECORD_S:
            if self._pending:
                self._hand_off()
            if not self._busy or self._chain_idle(lane, message.key):
                self._run_here(lane, msg, message, received)
                return
        self._queue(Work(lane, message, msg, received))

    def _queue(self, work: Work) -> None:
        work.lane.state.offsets.begin(work.message.offset)
        work.lane.submitted += 1
        self.in_flight += 1
        pending = self._pending
        pending.append(work)
        if len(pending) >= HANDOFF_SLICE:
            self._hand_off()

    def _run_here(self, lane: Lane, msg: Any, message: Message, received: float) -> None:
        """The sequential runner's path, for a quick record whose chain has nothing in the workers.

        Handing records that take microseconds to threads only adds the hand-over to them (the GIL lets one
        thread run at a time). A failure that will be retried goes to the workers, which wait out the backoff;
        the records of its chain then queue behind it there.
        """
        duration = self._run(lane.state, msg, message, received, self._retry_elsewhere)
        if duration is not None:
            dispatcher = self._dispatcher
            dispatcher.mean_s = 0.8 * dispatcher.mean_s + 0.2 * duration  # as Dispatcher.note()

    def _retry_elsewhere(
        self,
        state: PartitionState,
        msg: Any,
        message: Message,
        exc: Exception,
        attempt: int,
        received: float,
        duration: float,
    ) -> None:
        lane = self._lanes[state]
        retry = self._ctx.settings.retry
        work = Work(lane, message, msg, received)
        if retry.max_attempts == 1:
            lane.state.metrics.processing.observe(duration)
            self._dead_letter(lane.state, msg, exc, DlqReason.RETRIES_EXHAUSTED, 1, received, message)
            return
        work.retry_in = retry.backoff(1)
        work.alone = True
        self._reports.retrying(Completion(Outcome.RETRY, (work,), 1, duration, exc, backoff=work.retry_in))
        self._queue(work)
        self._hand_off()

    @property
    def busy(self) -> bool:
        return self.in_flight > 0

    def fetch_limit(self, wanted: int) -> int:
        """How many records the next ``consume()`` may return without overshooting the in-flight bound.

        When the bound is reached, completions are awaited for a moment first; only when none come are the
        partitions paused (a pause drops what the client had fetched, so pausing at every turn would cost a fetch).
        """
        room = self._limit - self.in_flight
        if room <= 0:
            self._await_completions(BUSY_WAIT_S)
            room = self._limit - self.in_flight
            if room <= 0:
                self._pause()
        return max(1, min(wanted, room))

    def turn(self) -> None:
        """Once per loop turn: hand off what was read, apply what completed, pause or resume partitions."""
        if self._pending:
            self._hand_off()
        completions = self._completions
        while not completions.empty():
            self._apply(completions.get_nowait())
        if self._holding:
            self._balance()
        if self._deferred is not None:
            error, self._deferred = self._deferred, None
            raise error

    def _hand_off(self) -> None:
        works, self._pending = self._pending, []
        self._dispatcher.submit(works)

    def _await_completions(self, timeout: float) -> None:
        try:
            completion = self._completions.get(timeout=timeout)
        except queue.Empty:
            return
        self._apply(completion)
        while not self._completions.empty():
            self._apply(self._completions.get_nowait())

    def _pause(self) -> None:
        """Pause every assigned partition (new ones included) until half of the records out came back."""
        self._holding = True
        pause = self._flow.pause
        for key in self._ctx.partitions:
            pause(key, PauseReason.IN_FLIGHT_LIMIT)

    def holds_records(self, state: PartitionState) -> bool:
        """True while records of ``state``'s partition are queued here or out in the workers."""
        lane = self._lanes.get(state)
        return lane is not None and lane.outstanding > 0

    def _balance(self) -> None:
        if self.in_flight > self._limit // 2:
            self._pause()
            return
        self._holding = False
        self._flow.resume_all(PauseReason.IN_FLIGHT_LIMIT)

    # -- completions -------------------------------------------------------------------------------

    def _apply(self, completion: Completion) -> None:
        outcome = completion.outcome
        if outcome is Outcome.RETRY:
            self._reports.retrying(completion)
            return
        if outcome is Outcome.SPLIT:
            self._reports.split(completion)
            return
        for work in completion.works:  # a final outcome: the records are no longer out (counted first: what
            work.lane.reported += 1  # follows may raise, the circuit breaker for one)
        self.in_flight -= len(completion.works)
        if outcome is Outcome.OK:
            self._reports.processed(completion)
        elif outcome is Outcome.DEAD:
            self._reports.dead(completion)
        elif outcome is Outcome.FATAL:
            assert completion.error is not None
            raise completion.error

    # -- rebalances and shutdown -------------------------------------------------------------------

    def revoke(self, states: Sequence[PartitionState], timeout: float) -> None:
        """Before the revoke commit: let the partitions' records in the handler finish (bounded), drop the rest."""
        lanes = self._halt(states)
        if lanes and not self._ctx.closing:
            self._wait(lanes, timeout)
            if left := sum(lane.outstanding for lane in lanes):
                self._ctx.log.warning("revoke: records still in the handler; the new owner redelivers them",
                                      records=left, waited_s=timeout)  # fmt: skip
        for lane in lanes:
            lane.revoked = True
        self._reports.count_processed(lane.state for lane in lanes)

    def lose(self, states: Sequence[PartitionState]) -> None:
        for lane in self._halt(states):
            lane.revoked = True

    def stop(self, timeout: float) -> None:
        """At shutdown: drop what has not started, wait (bounded) for what has, apply every completion."""
        for work in self._pending:
            work.lane.reported += 1
        self.in_flight -= len(self._pending)
        self._pending = []
        lanes = self._halt(list(self._lanes))
        self._wait(lanes, timeout)
        self._reports.count_processed(self._ctx.partitions.values())
        if self._deferred is not None and not isinstance(self._deferred, CircuitOpenError):
            self._ctx.log.error("a worker raised while stopping", error=repr(self._deferred))
        self._deferred = None

    def close(self, timeout: float) -> None:
        if not self._dispatcher.close(timeout):
            self._ctx.log.warning("workers still inside the handler after the grace period; not waiting for them")
        del self._run, self._flow, self._dead_letter, self._reports  # they hold the clients (Engine._shutdown)

    def _halt(self, states: Iterable[PartitionState]) -> list[Lane]:
        lanes = [lane for state in states if (lane := self._lanes.pop(state, None)) is not None]
        if not lanes:
            return []
        dropped = self._dispatcher.halt(lanes)
        for work in dropped:
            work.lane.reported += 1
        self.in_flight -= len(dropped)
        return lanes

    def _wait(self, lanes: list[Lane], timeout: float) -> None:
        """Apply completions until ``lanes`` have nothing outstanding, or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while any(lane.outstanding > 0 for lane in lanes):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                completion = self._completions.get(timeout=left)
            except queue.Empty:
                return
            try:
                self._apply(completion)
            except BaseException as exc:  # noqa: BLE001 - inside a rebalance callback: raised by the next turn
                self._deferred = self._deferred or exc
