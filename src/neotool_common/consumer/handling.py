"""One record, from the client's message to a completed, retried or dead-lettered offset.

The sequential path (:meth:`RecordHandler.handle`) runs ``process()`` on the poll thread; the throughput
modes (:meth:`RecordHandler.submit`) validate here and hand the record to the workers (:mod:`.workers`).
Records that cannot be decoded or break the schemas never reach ``process()``: they are dead-lettered with
``dlq.reason`` ``decode`` or ``validation`` and the failing JSON path. Records replayed for another consumer
group (:mod:`.replay_scope`) are not even read: their offsets complete at once.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import call
from time import perf_counter
from typing import Any, cast

from confluent_kafka import Message as KafkaMessage

from neotool_common.concurrency.dispatch import check_not_awaitable
from neotool_common.consumer.context import RunContext
from neotool_common.consumer.deadletters import DeadLetters
from neotool_common.consumer.partition import PartitionState
from neotool_common.consumer.raw import raise_undecodable
from neotool_common.consumer.replay_scope import ReplayScope
from neotool_common.consumer.retries import Retries
from neotool_common.consumer.workers import ParallelProcessing
from neotool_common.deadletter.headers import DlqReason
from neotool_common.errors import InvalidRecordError
from neotool_common.records.message import Message
from neotool_common.records.validation import EnvelopeReader

__all__ = ["FailurePolicy", "RecordHandler"]

# What to do with a record whose process() raised a transient error: (state, msg, message, exc, attempt,
# received, duration).
FailurePolicy = Callable[[PartitionState, KafkaMessage, Message, Exception, int, float, float], None]


class RecordHandler:
    def __init__(
        self,
        ctx: RunContext,
        reader: EnvelopeReader,
        process: Callable[[Message], Any],
        dead_letters: DeadLetters,
        retries: Retries,
        workers: ParallelProcessing | None,
    ) -> None:
        self._ctx = ctx
        self._read = reader.read
        self._process = process
        self._dead_letters = dead_letters
        self._retries = retries
        self._workers = workers
        self._circuit = ctx.circuit
        self._debug = ctx.debug
        self._scope = ReplayScope(ctx.settings.group_id)
        self._skipping: set[str] = set()  # topics where a replay for another group was skipped (said once each)
        self._retry_here: FailurePolicy = self._failed  # bound once: handle() runs per record
        self.handle_record = self.handle if workers is None else self.submit

    def _message(self, state: PartitionState, msg: KafkaMessage, received: float) -> Message | None:
        try:
            try:
                listed: Any = call(msg.headers)  # raw.headers_of, inline: see there why through operator.call
            except (UnicodeDecodeError, SystemError) as exc:
                raise_undecodable(exc)
            headers = tuple(listed) if listed else ()
            if headers:
                other = self._scope.other_group(headers)
                if other is not None:
                    self._skip(state, msg, other)
                    return None
            return self._read(
                msg.value(),
                msg.key(),
                headers,
                state.topic,
                state.partition,
                msg.offset(),  # type: ignore[arg-type]  # a record's is never None; no cast() call per record
                msg.timestamp()[1],
            )
        except InvalidRecordError as exc:
            self._dead_letters.route(state, msg, exc, exc.reason, 1, received)
            return None

    def _skip(self, state: PartitionState, msg: KafkaMessage, group: bytes) -> None:
        """A copy replayed for ``group``: committable at once, unprocessed, counted; logged at DEBUG."""
        state.offsets.done(cast(int, msg.offset()))
        state.metrics.skipped_replay.inc()
        self._ctx.tally.since_commit += 1
        if state.topic not in self._skipping:
            self._skipping.add(state.topic)
            self._ctx.log.info(
                "skipping records replayed for other consumer groups (neotool_consumer_records_skipped_total)",
                topic=state.topic,
            )
        if self._debug:
            self._ctx.record_log(None, msg).debug(
                "record replayed for another group skipped", replay_group=group[:255].decode("utf-8", "replace")
            )

    def handle(self, state: PartitionState, msg: KafkaMessage, received: float) -> None:
        message = self._message(state, msg, received)
        if message is not None:
            self.run(state, msg, message, received, self._retry_here)

    def run(
        self, state: PartitionState, msg: KafkaMessage, message: Message, received: float, failed: FailurePolicy
    ) -> float | None:
        """Run ``process()`` here, on the poll thread; its duration, or None when it raised.

        An invalid record is dead-lettered at once; any other failure goes to ``failed`` (a retry here, or in
        the workers for the throughput modes' quick records).
        """
        offset = message.offset
        attempt = 1 if offset != state.retry_offset else state.attempt_of(offset)  # one call less per record
        ctx = self._ctx  # ctx.perf_now: the batch's budget is checked against the reading after process()
        started = perf_counter()
        try:
            result = self._process(message)
        except InvalidRecordError as exc:
            ctx.perf_now = ended = perf_counter()
            state.metrics.processing.observe(ended - started)
            self._dead_letters.route(state, msg, exc, exc.reason, attempt, received, message)
            return None
        except Exception as exc:  # noqa: BLE001 - every other failure is transient by contract
            ctx.perf_now = ended = perf_counter()
            failed(state, msg, message, exc, attempt, received, ended - started)
            return None
        if result is not None:
            check_not_awaitable(result, "process()")
        ctx.perf_now = finished = perf_counter()
        metrics = state.metrics
        metrics.processing.defer(finished - started)  # counted once the batch is handled (Batches.handle)
        metrics.ack_latency.defer(finished - received)
        state.offsets.done(offset)
        state.processed_unflushed += 1
        state.last_ingested_at = message.ingested_at
        if attempt > 1:
            state.clear_retry()
        self._circuit.consecutive = 0
        if self._debug:
            ctx.record_log(message, msg).debug("record processed", attempt=attempt, duration_s=finished - started)
        return finished - started

    def _failed(
        self,
        state: PartitionState,
        msg: KafkaMessage,
        message: Message,
        exc: Exception,
        attempt: int,
        received: float,
        duration: float,
    ) -> None:
        state.metrics.processing.observe(duration)
        if attempt >= self._ctx.settings.retry.max_attempts:
            self._dead_letters.route(state, msg, exc, DlqReason.RETRIES_EXHAUSTED, attempt, received, message)
            return
        self._retries.schedule(state, msg, message, exc, attempt)

    def submit(self, state: PartitionState, msg: KafkaMessage, received: float) -> None:
        """The throughput modes: validate on the poll thread, then hand the record to the workers."""
        message = self._message(state, msg, received)
        if message is not None:
            assert self._workers is not None
            self._workers.submit(state, msg, message, received)
