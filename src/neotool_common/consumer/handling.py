"""One record, from the client's message to a completed, retried or dead-lettered offset.

Each record is read here (:attr:`RecordHandler.handle_record`); the sequential path then runs ``process()`` on
the poll thread (:meth:`RecordHandler.run`), the throughput modes hand the record to the workers (:mod:`.workers`).
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
Handle = Callable[[PartitionState, KafkaMessage, float], None]  # a record as the batch hands it over
Then = Callable[[PartitionState, KafkaMessage, Message, float], object]  # a read record: run it, or hand it over


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
        self._circuit = ctx.circuit
        self._debug = ctx.debug
        self._scope = ReplayScope(ctx.settings.group_id)
        self._skipping: set[str] = set()  # topics where a replay for another group was skipped (said once each)
        # The sequential runner runs process() here; the throughput modes hand the records to the workers.
        self.handle_record: Handle = self._reading(self.run if workers is None else workers.submit)

    def _reading(self, then: Then) -> Handle:
        """The function each record is handed to: read it (headers, replay scope, envelope), then ``then`` it.

        A record that cannot be read is dead-lettered (``decode`` or ``validation``); a replay for another group
        is skipped. One function, its parts bound once: it runs per record.
        """
        read, scope, dead_letters, skip = self._read, self._scope, self._dead_letters, self._skip

        def handle(state: PartitionState, msg: KafkaMessage, received: float) -> None:
            try:
                try:
                    listed: Any = call(msg.headers)  # raw.headers_of, inline: see there why through operator.call
                except (UnicodeDecodeError, SystemError) as exc:
                    raise_undecodable(exc)
                headers = tuple(listed) if listed else ()
                if headers and (other := scope.other_group(headers)) is not None:
                    skip(state, msg, other)
                    return
                message = read(
                    msg.value(),
                    msg.key(),
                    headers,
                    state.topic,
                    state.partition,
                    msg.offset(),  # type: ignore[arg-type]  # a record's is never None; no cast() call per record
                    msg.timestamp()[1],
                )
            except InvalidRecordError as exc:
                dead_letters.route(state, msg, exc, exc.reason, 1, received)
                return
            then(state, msg, message, received)

        return handle

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

    def run(
        self,
        state: PartitionState,
        msg: KafkaMessage,
        message: Message,
        received: float,
        failed: FailurePolicy | None = None,
    ) -> float | None:
        """Run ``process()`` here, on the poll thread; its duration, or None when it raised.

        An invalid record is dead-lettered at once; any other failure goes to ``failed`` (the workers', for the
        throughput modes' quick records), by default a retry here.
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
            (failed or self._failed)(state, msg, message, exc, attempt, received, ended - started)
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
