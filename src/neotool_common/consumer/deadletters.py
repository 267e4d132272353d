"""The engine's side of dead-lettering: a record's DLQ copy, its acknowledgement, and the partition it holds.

A dead-lettered record is *pending* in its partition's offsets until the broker acknowledges its DLQ copy,
so nothing is committed past it. Failed writes are sent again by the
:class:`~neotool_common.deadletter.publisher.DeadLetterPublisher`; while too many records of a partition wait
behind one (``MAX_PENDING_PER_PARTITION``), the partition is paused (``DLQ_BACKPRESSURE``) and resumed once
at most half of that many are held. Every dead-letter also feeds the circuit breaker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from confluent_kafka import Message as KafkaMessage

from neotool_common.consumer.context import RunContext
from neotool_common.consumer.flow import PartitionFlow, PauseReason
from neotool_common.consumer.partition import PartitionState
from neotool_common.consumer.raw import dlq_copy_headers, qualified
from neotool_common.deadletter.headers import DLQ_SUFFIX, dlq_topic_for
from neotool_common.deadletter.publisher import DeadLetter, DeadLetterPublisher, Headers, describe_failure
from neotool_common.records.message import Message

__all__ = ["DeadLetters", "Diverter", "Origin"]


@dataclass(frozen=True)
class Origin:
    """The source record a dead-letter describes, with the headers its copy starts from."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    headers: Headers
    attempts: int


class Diverter(Protocol):
    """Retry tiers (:mod:`.tiers`): a failed record may go to a retry topic instead of the DLQ."""

    def divert(
        self, state: PartitionState, msg: Any, error: BaseException, reason: str, attempts: int, received: float,
        message: Message | None,
    ) -> bool: ...  # fmt: skip

    def origin(self, state: PartitionState, msg: Any, error: BaseException, attempts: int) -> Origin | None: ...

    def forget(self, states: list[PartitionState]) -> None: ...

    def write_failed(self, letter: DeadLetter) -> None: ...


class DeadLetters:
    def __init__(
        self,
        ctx: RunContext,
        producer: Any,
        flow: PartitionFlow,
        on_fatal: Callable[[str], None] | None = None,
        redact: Callable[[str], str] = str,
    ) -> None:
        self._ctx = ctx
        self._flow = flow
        self._redact = redact  # the consumer's redact_failure(): exception text may echo personal data
        self.publisher = DeadLetterPublisher(producer, ctx.settings.dlq, ctx.clock, self._write_failed, on_fatal)
        self.tiers: Diverter | None = None  # the group's retry tiers, when it has some

    def forget(self, states: list[PartitionState]) -> None:
        """Partitions revoked or lost: tier writes not yet sent for their records are dropped (redelivered)."""
        if self.tiers is not None:
            self.tiers.forget(states)

    def route(
        self,
        state: PartitionState,
        msg: KafkaMessage,
        error: BaseException,
        reason: str,
        attempts: int,
        received: float,
        message: Message | None = None,
    ) -> None:
        """Send ``msg`` to its DLQ (or its next retry tier); its offset completes when the broker acknowledges."""
        ctx = self._ctx
        offset = cast(int, msg.offset())
        tiers = self.tiers
        if tiers is not None and tiers.divert(state, msg, error, str(reason), attempts, received, message):
            return
        origin = None if tiers is None else tiers.origin(state, msg, error, attempts)
        if origin is None:
            headers = dlq_copy_headers(msg, error)
            origin = Origin(state.topic, state.partition, offset, msg.timestamp()[1], headers, attempts)
        headers = describe_failure(
            origin.headers,
            topic=origin.topic,
            partition=origin.partition,
            offset=origin.offset,
            timestamp_ms=origin.timestamp_ms,
            group=ctx.settings.group_id,
            reason=str(reason),
            error=error,
            attempts=origin.attempts,
            policy=ctx.settings.dlq,
            now=ctx.clock.time(),
            redact=self._redact,
        )

        def acked(letter: DeadLetter) -> None:
            state.offsets.finish(letter.offset)
            ctx.tally.since_commit += 1
            state.metrics.dead_lettered(letter.reason)
            state.metrics.ack_latency.observe(time.perf_counter() - received)

        state.offsets.begin(offset)
        if attempts > 1:
            state.clear_retry()
        letter = DeadLetter(
            state.topic, state.partition, offset, msg.key(), msg.value(), msg.timestamp()[1], headers, str(reason),
            attempts, acked, destination=dlq_topic_for(origin.topic),
        )  # fmt: skip
        if ctx.record_lines.allow(f"dead-lettered: {reason}"):
            ctx.record_log(message, msg, error).warning(
                "dead-lettering record",
                reason=str(reason),
                attempts=attempts,
                exception_type=qualified(error),
                error=self._redact(str(error)),
                path=str(getattr(error, "path", "")),
                dlq_topic=letter.dlq_topic,
            )
        self.publisher.send(letter)
        ctx.tally.dead_lettered += 1
        ctx.tally.turn_dead += 1
        ctx.circuit.dead_lettered()

    def _write_failed(self, letter: DeadLetter, error: str) -> None:
        tier = letter.reason == "retry"  # a write to a retry tier's topic (consumer/tiers/writes.py)
        if tier and self.tiers is not None:
            self.tiers.write_failed(letter)  # counted by tier: the DLQ's alert is not about it
        else:  # by the topic whose DLQ refused it: a record read from a tier goes to its source topic's DLQ
            self._ctx.metrics.topic(letter.dlq_topic.removesuffix(DLQ_SUFFIX)).dlq_write_failures.inc()
        kind = "retry-topic" if tier else "dead-letter"
        if not self._ctx.record_lines.allow(f"{kind} write failed"):
            return
        refused = {"needs": f"WRITE on topic {letter.dlq_topic}"} if "TOPIC_AUTHORIZATION_FAILED" in error else {}
        self._ctx.log.warning(
            f"{kind} write failed; will retry, committing nothing past this record",
            **{"retry_topic" if tier else "dlq_topic": letter.dlq_topic},
            topic=letter.topic,
            partition=letter.partition,
            offset=letter.offset,
            error=error,
            failed_writes=letter.failed_writes,
            **refused,
        )

    def apply_backpressure(self, state: PartitionState) -> None:
        """Pause a partition whose records pile up behind an unacknowledged dead-letter write."""
        held = state.offsets.held()
        limit = self._ctx.settings.max_pending_per_partition
        flow = self._flow
        if held >= limit:
            if not flow.is_paused(state.key, PauseReason.DLQ_BACKPRESSURE):
                flow.pause(state.key, PauseReason.DLQ_BACKPRESSURE)
                self._ctx.log.warning(
                    "partition paused: records held behind a dead-letter write",
                    topic=state.topic,
                    partition=state.partition,
                    held=held,
                )
        elif held <= limit // 2:
            flow.resume(state.key, PauseReason.DLQ_BACKPRESSURE)
