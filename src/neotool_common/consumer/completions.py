"""What the poll thread does with the workers' completions: offsets, metrics, logs and dead-letter writes.

A record's final completion finishes its offset (processed) or sends it to the DLQ (dead); a ``RETRY`` or
``SPLIT`` only counts and logs. Completions of a revoked lane are ignored: its new owner redelivers them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from neotool_common.concurrency.chains import Completion
from neotool_common.consumer.context import RunContext
from neotool_common.consumer.partition import PartitionState
from neotool_common.consumer.raw import qualified

__all__ = ["CompletionReports"]


class CompletionReports:
    def __init__(self, ctx: RunContext, dead_letter: Callable[..., Any]) -> None:
        self._ctx = ctx
        self._dead_letter = dead_letter

    def processed(self, completion: Completion) -> None:
        now = time.perf_counter()
        durations = completion.durations
        if not durations:  # one process_batch() call
            completion.works[0].lane.state.metrics.processing.observe(completion.duration)
        for index, work in enumerate(completion.works):
            lane = work.lane
            if lane.revoked:
                continue
            state = lane.state
            message = work.message
            metrics = state.metrics
            state.offsets.finish(message.offset)
            state.processed_unflushed += 1
            state.last_ingested_at = message.ingested_at
            metrics.ack_latency.observe(now - work.received)
            if durations:
                metrics.processing.observe(durations[index])
        self._ctx.circuit.consecutive = 0
        if self._ctx.debug:
            for work in completion.works:
                self._ctx.record_log(work.message, work.raw).debug("record processed", attempt=completion.attempts)

    def dead(self, completion: Completion) -> None:
        (work,) = completion.works
        if work.lane.revoked:
            return
        state = work.lane.state
        state.metrics.processing.observe(completion.duration)
        assert completion.error is not None
        self._dead_letter(
            state, work.raw, completion.error, completion.reason, completion.attempts, work.received, work.message
        )

    def retrying(self, completion: Completion) -> None:
        (work,) = completion.works
        if work.lane.revoked:
            return
        metrics = work.lane.state.metrics
        metrics.processing.observe(completion.duration)
        metrics.retries.inc()
        error = completion.error
        if self._ctx.record_lines.allow("retried in place"):
            self._ctx.record_log(work.message, work.raw).warning(
                "processing failed; retrying",
                attempt=completion.attempts,
                max_attempts=self._ctx.settings.retry.max_attempts,
                backoff_s=round(completion.backoff, 3),
                exception_type=qualified(error),
                error=str(error),
            )

    def split(self, completion: Completion) -> None:
        first = completion.works[0]
        first.lane.state.metrics.processing.observe(completion.duration)
        error = completion.error
        self._ctx.log.warning(
            "process_batch failed; processing its records one by one",
            records=len(completion.works),
            exception_type=qualified(error),
            error=str(error),
        )

    def count_processed(self, states: Iterable[PartitionState]) -> None:
        """Count completions applied outside a loop turn (a revoked partition is forgotten before the next)."""
        tally = self._ctx.tally
        for state in states:
            count, state.processed_unflushed = state.processed_unflushed, 0
            if count:
                state.metrics.processed.inc(count)
                tally.processed += count
                tally.since_commit += count
