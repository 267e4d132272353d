"""In-place retries of the sequential path: the partition waits out the backoff without blocking the poll loop.

A failed record's partition is sought back to it and paused (``RETRY_BACKOFF``); records fetched after it are
dropped (they will be fetched again). When the backoff is due the pause reason goes, the record is fetched
and handled again, with the attempt number it has reached. A partition revoked or lost meanwhile forgets its
retry; whoever owns it next starts from the committed offset, at attempt 1.

:meth:`Retries.hold` serves the retry tiers too: a retry topic's partition waits (``RETRY_DUE``) the same way
until its head record is due (:mod:`.tiers.gate`).
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition

from neotool_common.consumer.context import RunContext
from neotool_common.consumer.flow import PartitionFlow, PauseReason
from neotool_common.consumer.partition import PartitionState
from neotool_common.consumer.raw import qualified
from neotool_common.records.message import Message

__all__ = ["Retries"]


class Retries:
    def __init__(self, ctx: RunContext, consumer: Any, flow: PartitionFlow) -> None:
        self._ctx = ctx
        self._consumer = consumer
        self._flow = flow
        self.waiting: set[PartitionState] = set()

    def schedule(self, state: PartitionState, msg: Any, message: Message, exc: Exception, attempt: int) -> None:
        """Try ``message`` again after its backoff; the partition holds still until then."""
        policy = self._ctx.settings.retry
        backoff = policy.backoff(attempt)
        state.retry_offset = message.offset
        state.retry_attempts = attempt
        self.hold(state, message.offset, backoff, PauseReason.RETRY_BACKOFF)
        state.metrics.retries.inc()
        if self._ctx.record_lines.allow("retried in place"):
            self._ctx.record_log(message, msg).warning(
                "processing failed; retrying",
                attempt=attempt,
                max_attempts=policy.max_attempts,
                backoff_s=round(backoff, 3),
                exception_type=qualified(exc),
                error=str(exc),
            )

    def hold(self, state: PartitionState, offset: int, wait_s: float, reason: PauseReason) -> None:
        """Seek ``state``'s partition back to ``offset`` and hold it still for ``wait_s`` seconds."""
        state.blocked = True
        state.resume_at = self._ctx.clock.monotonic() + wait_s
        self._consumer.seek(TopicPartition(state.topic, state.partition, offset))
        self._flow.pause(state.key, reason)
        self.waiting.add(state)

    def resume_due(self, now: float) -> None:
        for state in [state for state in self.waiting if state.resume_at <= now]:
            self.waiting.discard(state)
            state.blocked = False
            self._flow.resume(state.key, PauseReason.RETRY_BACKOFF)
            self._flow.resume(state.key, PauseReason.RETRY_DUE)  # a retry topic's head record (tiers/gate.py)

    def next_due_in(self, now: float, timeout: float) -> float:
        for state in self.waiting:
            timeout = min(timeout, max(0.0, state.resume_at - now))
        return timeout

    def forget(self, state: PartitionState) -> None:
        self.waiting.discard(state)
        state.blocked = False
