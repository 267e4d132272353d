"""``KafkaConsumerRunner``: subclass it, declare ``topics`` and ``group_id``, write ``process()``.

The runner owns every hard part: at-least-once offset commits, retries with backoff, the dead-letter
queue, envelope validation, metrics, structured logs, health probes and graceful shutdown::

    class InstitutionConsumer(KafkaConsumerRunner):
        topics = ("financial.institution.v1",)
        group_id = "institution-enhancement"

        def process(self, message: Message) -> None:
            ...

    main = InstitutionConsumer.main  # the console script

Delivery contract:

* An offset becomes committable only after ``process()`` returned for its record, or after the record's
  dead-letter write was acknowledged by the broker. Nothing is ever committed past a record that is
  neither. Commits are asynchronous and amortised (:class:`~neotool_common.policies.commit.CommitPolicy`),
  synchronous on partition revoke and on shutdown, and never made for partitions reported lost.
* ``process()`` runs on the poll thread, one record at a time per partition, in offset order. It may block
  for as long as ``max.poll.interval.ms`` allows (default 5 minutes). It may raise:
  :class:`~neotool_common.errors.PoisonMessageError` (dead-lettered at once), any other ``Exception``
  (retried with backoff, dead-lettered as ``retries_exhausted`` when attempts run out). A ``BaseException``
  that is not an ``Exception`` stops the runner; that record is neither committed nor dead-lettered.
* Retry backoffs never block the poll loop: the partition is paused and seeked back to the record.
* Records that cannot be decoded or break the schemas never reach ``process()``: they are dead-lettered
  with ``dlq.reason`` ``decode`` or ``validation`` and the failing JSON path.

Throughput modes (:mod:`~neotool_common.policies.throughput`, ``docs/throughput.md``): with ``max_concurrency`` above 1,
an ``async def process()`` or a ``process_batch()``, records are handled by workers (:mod:`.parallel`), in the
order ``ordering`` asks; the contract above holds with "one record at a time per partition" replaced by that
order, and retries wait in the worker, holding back only the record's own chain.
"""

from __future__ import annotations

import operator
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, cast

import pydantic
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka import Message as KafkaMessage
from prometheus_client import REGISTRY, CollectorRegistry

from neotool_common.clock import Clock, SystemClock
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer.lag import LagMonitor
from neotool_common.consumer.partition import PartitionState
from neotool_common.consumer.workers import ParallelProcessing
from neotool_common.deadletter.circuit import CircuitBreaker
from neotool_common.deadletter.headers import DlqReason, dlq_topic_for
from neotool_common.deadletter.publisher import DeadLetter, DeadLetterPublisher, describe_failure
from neotool_common.errors import CircuitOpenError, ConfigurationError, DecodeError, InvalidRecordError
from neotool_common.observability.health import HealthServer, HealthState
from neotool_common.observability.logs import configure_logging, get_logger, register_secret, trace_id_from_traceparent
from neotool_common.observability.metrics import ConsumerMetrics
from neotool_common.records.message import Message
from neotool_common.records.validation import EnvelopeReader, SchemaSource

__all__ = ["KafkaConsumerRunner"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIGURATION = 2
EXIT_CIRCUIT_OPEN = 3

Key = tuple[str, int]
_HEADERS_PATH = "$headers"  # the dlq.path of a record whose header names cannot be decoded
# While workers hold records, consume() blocks no longer than this, so that their completions are applied soon.
PARALLEL_POLL_TIMEOUT_S = 0.005


class KafkaConsumerRunner:
    """Base class of every consumer. Override :meth:`process` (and optionally :meth:`setup`/:meth:`teardown`).

    The lifecycle methods (:meth:`run`, :meth:`stop`, :meth:`main`) are not meant to be overridden.
    """

    topics: ClassVar[Sequence[str]] = ()
    group_id: ClassVar[str] = ""
    payload_schema: ClassVar[SchemaSource | None] = None
    payload_model: ClassVar[type[pydantic.BaseModel] | None] = None
    task_name: ClassVar[str | None] = None
    # Throughput mode (docs/throughput.md); MAX_CONCURRENCY, ORDERING, BATCH_SIZE, BATCH_MAX_WAIT_MS override them.
    max_concurrency: ClassVar[int] = 1
    ordering: ClassVar[str] = "partition"
    batch_size: ClassVar[int] = 100
    batch_max_wait_ms: ClassVar[int] = 20

    def __init__(
        self,
        settings: RunnerSettings | None = None,
        *,
        registry: CollectorRegistry | None = None,
        clock: Clock | None = None,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
        producer_factory: Callable[[dict[str, Any]], Any] = Producer,
    ) -> None:
        self.settings = settings if settings is not None else RunnerSettings.from_env(defaults_from=type(self))
        self.registry = registry if registry is not None else REGISTRY
        self.metrics = ConsumerMetrics(self.registry, self.settings.group_id)
        self._lag = LagMonitor.for_runner(self.settings, self.metrics)  # [lag] makes no client yet
        self._clock = clock or SystemClock()
        self._reader = EnvelopeReader(self.payload_schema, self.payload_model)
        self._circuit = CircuitBreaker(self.settings.circuit)
        self._consumer_factory = consumer_factory
        self._producer_factory = producer_factory
        self._name = self.task_name or type(self).__name__
        self._log = get_logger("neotool_common.consumer", group=self.settings.group_id, task_name=self._name)
        self._partitions: dict[Key, PartitionState] = {}
        self._blocked: set[PartitionState] = set()
        self._stop_requested = False
        self._closing = False
        self._consumer: Any = None
        self._dlq: DeadLetterPublisher | None = None
        self.health = HealthState(self._max_poll_interval_s(), clock=self._clock.monotonic)
        self._batch_budget_s = min(self.settings.commit.interval_s, self._max_poll_interval_s() / 2)
        self._carried: list[KafkaMessage] = []
        self.records_processed = 0
        self.records_dead_lettered = 0
        self._batch_records = 0
        self._batch_dead = 0
        self._completed_since_commit = 0
        self._last_commit = 0.0
        self._last_progress = 0.0
        self._last_reconnect_probe = 0.0
        self._debug = self.settings.log_level == "DEBUG"
        self._parallel = ParallelProcessing.for_runner(self, KafkaConsumerRunner)
        self._handle_record = self._handle if self._parallel is None else self._submit
        for secret in (self.settings.connection.sasl_password, self.settings.connection.ssl_key_password):
            if secret is not None:
                register_secret(secret.reveal())

    # -- hooks ---------------------------------------------------------------------------------

    def setup(self) -> None:
        """Called once on the poll thread before the first record (open connections, run migrations)."""

    def teardown(self) -> None:
        """Called once after the last commit and after the consumer left its group (close connections)."""

    def process(self, message: Message) -> None:
        """Handle one validated record. Must be idempotent on ``message.record_id``: records can be redelivered.

        May be ``async def``: it then runs on the runner's event loop, ``max_concurrency`` records at a time.
        With ``max_concurrency`` above 1 a plain ``def`` runs on that many worker threads at once.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement process()")

    def process_batch(self, messages: list[Message]) -> None:
        """Optional: handle up to ``batch_size`` validated records at once (one database round trip, say).

        Records of one ordering chain come in offset order. Returning completes them all; raising any exception
        sends each record through ``process()`` by itself (or a batch of one when ``process()`` is not
        defined), so that only the bad ones are retried or dead-lettered. May be ``async def``, like ``process()``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement process_batch()")

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def main(cls, env: Mapping[str, str] | None = None) -> int:
        """Console-script entry point: configuration from the environment, signals, and an exit code.

        0 stopped cleanly; 1 failed; 2 configuration error (one line on stderr); 3 circuit breaker open.
        """
        try:
            settings = RunnerSettings.from_env(env, defaults_from=cls)
            configure_logging(settings.log_level, settings.log_format)
            runner = cls(settings)
        except ConfigurationError as exc:
            print(f"{cls.__name__}: configuration error: {exc}", file=sys.stderr)  # noqa: T201 - the CLI's answer
            return EXIT_CONFIGURATION
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: runner.stop())
        return runner.run_to_exit_code()

    def run_to_exit_code(self) -> int:
        try:
            self.run()
        except ConfigurationError as exc:
            print(f"{type(self).__name__}: configuration error: {exc}", file=sys.stderr)  # noqa: T201
            return EXIT_CONFIGURATION
        except CircuitOpenError:
            return EXIT_CIRCUIT_OPEN
        except Exception:  # noqa: BLE001 - the process exit code is the answer; the log has the traceback
            self._log.exception("consumer failed")
            return EXIT_FAILED
        return EXIT_OK

    def stop(self) -> None:
        """Ask the runner to finish the current record, commit and close. Safe from any thread or signal handler."""
        self._stop_requested = True

    def run(self) -> None:
        """Consume until :meth:`stop`; raises ``CircuitOpenError`` when dead-lettering runs away."""
        self._connect()
        server = self._start_health_server()
        try:
            self.setup()
            if self._parallel is not None:
                self._parallel.start()
            self._warn_about_missing_dlq_topics()
            self._consumer.subscribe(
                list(self.settings.topics), on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )
            self.health.set_running(True)
            self._log.info("consumer started", topics=list(self.settings.topics))
            self._loop()
        except CircuitOpenError as exc:
            self.metrics.circuit_open_child.set(1)
            self._log.error("circuit breaker open: stopping instead of dead-lettering the topic", reason=str(exc))
            raise
        finally:
            self.health.set_running(False)
            self.metrics.ready_child.set(0)
            self._shutdown()
            if server is not None:
                server.close()

    # -- set-up and shutdown -------------------------------------------------------------------

    def _connect(self) -> None:
        consumer_config = self.settings.consumer_config()
        consumer_config.update(on_commit=self._on_commit, error_cb=self._on_client_error)
        producer_config = self.settings.dlq_producer_config()
        producer_config.update(error_cb=self._on_client_error)
        try:
            self._consumer = self._consumer_factory(consumer_config)
            producer = self._producer_factory(producer_config)
        except (KafkaException, ValueError, TypeError) as exc:
            raise ConfigurationError("KAFKA_CONFIG_*", _client_error_text(exc)) from None
        self._lag.consumer = self._consumer  # [lag] where a never-committed partition is read from
        self._dlq = DeadLetterPublisher(producer, self.settings.dlq, self._clock, self._on_dlq_write_failed)

    def _start_health_server(self) -> HealthServer | None:
        if not self.settings.metrics_port:
            return None
        server = HealthServer(self.settings.metrics_port, self.registry, self.health, host=self.settings.metrics_host)
        server.start()  # a port in use is a ConfigurationError naming METRICS_PORT
        return server

    def _warn_about_missing_dlq_topics(self) -> None:
        try:
            known = self._consumer.list_topics(timeout=10).topics
        except KafkaException as exc:
            self._log.warning("cannot list topics to check the DLQ topics", error=str(exc))
            return
        self.health.set_connected(True)
        for topic in self.settings.topics:
            if dlq_topic_for(topic) not in known:
                self._log.warning(
                    "dead-letter topic does not exist: records that need it will wait, holding back commits",
                    dlq_topic=dlq_topic_for(topic),
                )

    def _shutdown(self) -> None:
        grace = self.settings.shutdown_grace_s
        started = self._clock.monotonic()
        assert self._dlq is not None
        if self._parallel is not None:
            self._parallel.stop(grace)
        left = self._dlq.drain(max(0.0, grace - (self._clock.monotonic() - started)))
        if left:
            self._log.warning(
                "dead-letter writes still unacknowledged at shutdown; their records will be redelivered", pending=left
            )
        self._commit(asynchronous=False)
        self._closing = True  # the revoke inside close() must not wait out the DLQ a second time
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as exc:
            self._log.warning("closing the consumer failed", error=str(exc))
        self._lag.close()  # [lag] drops its admin client here, on this thread
        self._dlq.drain(max(0.0, grace - (self._clock.monotonic() - started)))
        if self._parallel is not None:
            self._parallel.close(max(1.0, grace - (self._clock.monotonic() - started)))
        # Drop the clients here, on this thread: left to the garbage collector, librdkafka's destroy would run
        # on whichever thread collects the cycle (the clients hold callbacks bound to this runner).
        self._dlq = None
        self._consumer = None
        self.teardown()
        self._log.info(
            "consumer stopped",
            records_processed=self.records_processed,
            records_dead_lettered=self.records_dead_lettered,
        )

    # -- the poll loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        consumer = self._consumer
        dlq = self._dlq
        assert dlq is not None
        batch_size = self.settings.batch_size
        clock = self._clock
        parallel = self._parallel
        self._last_commit = self._last_progress = clock.monotonic()
        while not self._stop_requested:
            now = clock.monotonic()
            if self._blocked:
                self._resume_due(now)
            dlq.poll()
            carried = len(self._carried)
            wanted = max(1, batch_size - carried) if parallel is None else parallel.fetch_limit(batch_size - carried)
            messages = consumer.consume(wanted, 0.0)
            if not messages and not carried:
                # consume(n, timeout) waits for n records or the timeout, which at a low rate would hold every
                # record for the whole timeout: wait for the first one only; the next turn takes the rest.
                messages = consumer.consume(1, self._poll_timeout(now))
            self.health.poll_tick(clock.monotonic())
            if self._carried:  # what is left of it after the rebalance callbacks consume() may have run
                messages, self._carried = self._carried + messages, []
            if messages:
                self._handle_batch(messages)
            if parallel is not None:
                parallel.turn()
            self._after_batch(clock.monotonic())

    def _poll_timeout(self, now: float) -> float:
        timeout = self.settings.poll_timeout_s
        for state in self._blocked:
            timeout = min(timeout, max(0.0, state.resume_at - now))
        if self._parallel is not None and self._parallel.busy:
            timeout = min(timeout, PARALLEL_POLL_TIMEOUT_S)
        assert self._dlq is not None
        resend = self._dlq.next_resend_in(now)
        return timeout if resend is None else min(timeout, resend)

    def _handle_batch(self, messages: list[KafkaMessage]) -> None:
        partitions = self._partitions
        received = time.perf_counter()
        deadline = received + self._batch_budget_s
        for index, msg in enumerate(messages):
            if self._stop_requested:
                return
            if time.perf_counter() > deadline:
                self._carry_over(messages[index:])
                return
            error = msg.error()
            if error is not None:
                self._on_message_error(error)
                continue
            state = partitions.get(cast(Key, (msg.topic(), msg.partition())))
            if state is None or state.blocked:
                continue  # revoked, or waiting out a retry: the record will be fetched again
            self._handle_record(state, msg, received)

    def _carry_over(self, unhandled: list[KafkaMessage]) -> None:
        """Keep the records a batch did not reach for the next turn of the loop, which polls first.

        A batch stops once it has run for the commit interval (or half of ``max.poll.interval.ms``): however slow
        ``process()`` is, commits, dead-letter acknowledgements and polls keep their pace, and a batch of slow
        records cannot exceed ``max.poll.interval.ms`` and get the member evicted from its group. Records of a
        partition waiting out a retry are dropped: it was sought back and fetches them again.
        """
        partitions = self._partitions
        self._carried = [
            msg
            for msg in unhandled
            if msg.error() is not None
            or ((state := partitions.get(cast(Key, (msg.topic(), msg.partition())))) is not None and not state.blocked)
        ]

    def _handle(self, state: PartitionState, msg: KafkaMessage, received: float) -> None:
        offset = cast(int, msg.offset())
        try:
            message = self._reader.read(
                msg.value(), msg.key(), _headers_of(msg), state.topic, state.partition, offset, msg.timestamp()[1]
            )
        except InvalidRecordError as exc:
            self._dead_letter(state, msg, exc, exc.reason, 1, received)
            return
        attempt = state.attempt_of(offset)
        started = time.perf_counter()
        try:
            self.process(message)
        except InvalidRecordError as exc:
            state.metrics.processing.observe(time.perf_counter() - started)
            self._dead_letter(state, msg, exc, exc.reason, attempt, received, message)
            return
        except Exception as exc:  # noqa: BLE001 - every other failure is transient by contract
            state.metrics.processing.observe(time.perf_counter() - started)
            self._failed_attempt(state, msg, message, exc, attempt, received)
            return
        finished = time.perf_counter()
        metrics = state.metrics
        metrics.processing.observe(finished - started)
        metrics.ack_latency.observe(finished - received)
        state.offsets.done(offset)
        state.processed_unflushed += 1
        state.last_ingested_at = message.ingested_at
        if attempt > 1:
            state.clear_retry()
        self._circuit.consecutive = 0
        if self._debug:
            self._record_log(message, msg).debug("record processed", attempt=attempt, duration_s=finished - started)

    def _submit(self, state: PartitionState, msg: KafkaMessage, received: float) -> None:
        """The parallel path: validate on the poll thread, then hand the record to the workers."""
        offset = cast(int, msg.offset())
        try:
            message = self._reader.read(
                msg.value(), msg.key(), _headers_of(msg), state.topic, state.partition, offset, msg.timestamp()[1]
            )
        except InvalidRecordError as exc:
            self._dead_letter(state, msg, exc, exc.reason, 1, received)
            return
        assert self._parallel is not None
        self._parallel.submit(state, msg, message, received)

    def _failed_attempt(
        self, state: PartitionState, msg: KafkaMessage, message: Message, exc: Exception, attempt: int, received: float
    ) -> None:
        policy = self.settings.retry
        if attempt >= policy.max_attempts:
            self._dead_letter(state, msg, exc, DlqReason.RETRIES_EXHAUSTED, attempt, received, message)
            return
        backoff = policy.backoff(attempt)
        state.retry_offset = message.offset
        state.retry_attempts = attempt
        state.blocked = True
        state.resume_at = self._clock.monotonic() + backoff
        self._consumer.seek(TopicPartition(state.topic, state.partition, message.offset))
        self._consumer.pause([state.tp])
        self._pause_reasons_changed(state)  # [lag]
        self._blocked.add(state)
        state.metrics.retries.inc()
        self._record_log(message, msg).warning(
            "processing failed; retrying",
            attempt=attempt,
            max_attempts=policy.max_attempts,
            backoff_s=round(backoff, 3),
            exception_type=_qualified(exc),
            error=str(exc),
        )

    def _resume_due(self, now: float) -> None:
        due = [state for state in self._blocked if state.resume_at <= now]
        for state in due:
            self._blocked.discard(state)
            state.blocked = False
            self._pause_reasons_changed(state)  # [lag]
            if (state.topic, state.partition) in self._partitions and not state.throttled:
                self._consumer.resume([state.tp])

    # -- dead-lettering ------------------------------------------------------------------------

    def _dead_letter(
        self,
        state: PartitionState,
        msg: KafkaMessage,
        error: BaseException,
        reason: str,
        attempts: int,
        received: float,
        message: Message | None = None,
    ) -> None:
        assert self._dlq is not None
        offset = cast(int, msg.offset())
        headers = describe_failure(
            _dlq_copy_headers(msg, error),
            topic=state.topic,
            partition=state.partition,
            offset=offset,
            timestamp_ms=msg.timestamp()[1],
            group=self.settings.group_id,
            reason=str(reason),
            error=error,
            attempts=attempts,
            policy=self.settings.dlq,
            now=self._clock.time(),
        )

        def acked(letter: DeadLetter) -> None:
            state.offsets.finish(letter.offset)
            self._completed_since_commit += 1
            state.metrics.dead_lettered(letter.reason)
            state.metrics.ack_latency.observe(time.perf_counter() - received)

        state.offsets.begin(offset)
        if attempts > 1:
            state.clear_retry()
        letter = DeadLetter(
            state.topic,
            state.partition,
            offset,
            msg.key(),
            msg.value(),
            msg.timestamp()[1],
            headers,
            str(reason),
            attempts,
            acked,
        )
        self._record_log(message, msg).warning(
            "dead-lettering record",
            reason=str(reason),
            attempts=attempts,
            exception_type=_qualified(error),
            error=str(error),
            path=str(getattr(error, "path", "")),
            dlq_topic=letter.dlq_topic,
        )
        self._dlq.send(letter)
        self.records_dead_lettered += 1
        self._batch_dead += 1
        self._circuit.dead_lettered()

    def _on_dlq_write_failed(self, letter: DeadLetter, error: str) -> None:
        state = self._partitions.get((letter.topic, letter.partition))
        if state is not None:
            state.metrics.dlq_write_failures.inc()
        self._log.warning(
            "dead-letter write failed; will retry, committing nothing past this record",
            dlq_topic=letter.dlq_topic,
            topic=letter.topic,
            partition=letter.partition,
            offset=letter.offset,
            error=error,
            failed_writes=letter.failed_writes,
        )

    # -- after every batch ---------------------------------------------------------------------

    def _after_batch(self, now: float) -> None:
        completed = 0
        for state in self._partitions.values():
            if state.processed_unflushed:
                state.metrics.processed.inc(state.processed_unflushed)
                completed += state.processed_unflushed
                state.processed_unflushed = 0
            self._apply_backpressure(state)
        self.records_processed += completed
        self._completed_since_commit += completed
        self._circuit.observe(completed + self._batch_dead, self._batch_dead)
        self._batch_dead = 0
        assert self._dlq is not None
        self.metrics.dlq_pending_child.set(self._dlq.pending)
        self._refresh_readiness(now)
        self._lag.tick(now, self._partitions)  # [lag] refreshes lag and stalled seconds when due
        if self.settings.commit.due(self._completed_since_commit, now - self._last_commit):
            self._last_commit = now
            self._completed_since_commit = 0
            self._commit(asynchronous=True)
        if now - self._last_progress >= self.settings.progress_interval_s:
            self._last_progress = now
            self._log.info(
                "progress",
                records_processed=self.records_processed,
                records_dead_lettered=self.records_dead_lettered,
                partitions=len(self._partitions),
                dlq_pending=self._dlq.pending,
            )

    def _refresh_readiness(self, now: float) -> None:
        """Keep the ready gauge equal to /readyz; after a broker outage, find out whether the cluster is back."""
        if not self.health.readiness().connected and now - self._last_reconnect_probe >= 5.0:
            self._last_reconnect_probe = now
            try:
                self._consumer.list_topics(timeout=0.5)
                self.health.set_connected(True)
            except KafkaException:
                pass
        self.metrics.ready_child.set(1 if self.health.readiness().ok else 0)

    def _apply_backpressure(self, state: PartitionState) -> None:
        """Pause a partition whose records pile up behind an unacknowledged dead-letter write."""
        held = state.offsets.window()
        limit = self.settings.max_pending_per_partition
        if not state.throttled and held >= limit:
            state.throttled = True
            self._consumer.pause([state.tp])
            self._pause_reasons_changed(state)  # [lag]
            self._log.warning(
                "partition paused: records held behind a dead-letter write",
                topic=state.topic,
                partition=state.partition,
                held=held,
            )
        elif state.throttled and held < limit // 2:
            state.throttled = False
            self._pause_reasons_changed(state)  # [lag]
            if not state.blocked and not (self._parallel is not None and self._parallel.holds(state)):
                self._consumer.resume([state.tp])

    def _pause_reasons_changed(self, state: PartitionState) -> None:
        """[lag] Until one owner keeps each partition's pause reasons (issue 12, item 1): the ones known here."""
        if (state.topic, state.partition) in self._partitions:
            reasons = {"retry_backoff"} if state.blocked else set()
            if state.throttled:
                reasons.add("dlq_backpressure")
            self._lag.set_paused(state.topic, state.partition, frozenset(reasons))

    # -- commits -------------------------------------------------------------------------------

    def _commit(self, *, asynchronous: bool, states: Sequence[PartitionState] | None = None) -> None:
        offsets = []
        now = self._clock.time()
        for state in self._partitions.values() if states is None else states:
            position = state.offsets.committable()
            if position is not None and position > state.commit_sent:
                offsets.append(TopicPartition(state.topic, state.partition, position))
                state.commit_sent = position
                self._observe_commit(state, position, now)
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            self._commit_failed(offsets, str(exc.args[0] if exc.args else exc))

    def _observe_commit(self, state: PartitionState, position: int, now: float) -> None:
        if state.last_ingested_at is not None:
            state.metrics.end_to_end_age.observe(max(0.0, now - state.last_ingested_at.timestamp()))

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        failed = [tp for tp in partitions if tp.error is not None]
        if err is not None or failed:
            self._commit_failed(failed or partitions, str(err or failed[0].error))
            return
        self.metrics.commits_child.inc()
        for tp in partitions:
            state = self._partitions.get((tp.topic, tp.partition))
            if state is not None:
                state.offsets.committed = max(state.offsets.committed, tp.offset)
                self._lag.committed(tp.topic, tp.partition, tp.offset)  # [lag]

    def _commit_failed(self, offsets: Sequence[TopicPartition], error: str) -> None:
        self.metrics.commit_failures_child.inc()
        for tp in offsets:
            state = self._partitions.get((tp.topic, tp.partition))
            if state is not None:
                state.commit_sent = state.offsets.committed  # send it again with the next commit
        # ... which must come even if no record completes any more (an idle topic after a rebalance).
        self._completed_since_commit = max(self._completed_since_commit, 1)
        self._log.warning("offset commit failed; the records stay uncommitted and may be redelivered", error=error)

    # -- rebalance callbacks (run inside consume()) --------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalance("assign")
        self.health.set_connected(True)
        for tp in partitions:
            self._partitions[(tp.topic, tp.partition)] = PartitionState(
                tp.topic, tp.partition, self.metrics.topic(tp.topic)
            )
        self._assignment_changed("partitions assigned", partitions)

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalance("revoke")
        revoked = [s for tp in partitions if (s := self._partitions.get((tp.topic, tp.partition))) is not None]
        assert self._dlq is not None
        if self._parallel is not None:
            self._parallel.revoke(revoked, min(10.0, self.settings.shutdown_grace_s))
        if not self._closing and any(state.offsets.pending for state in revoked):
            self._dlq.drain(min(10.0, self.settings.shutdown_grace_s))
        self._commit(asynchronous=False, states=revoked)
        self._forget(partitions)
        self._assignment_changed("partitions revoked", partitions)

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        self.metrics.rebalance("lost")
        if self._parallel is not None:
            lost = [s for tp in partitions if (s := self._partitions.get((tp.topic, tp.partition))) is not None]
            self._parallel.lose(lost)
        self._forget(partitions)
        self._assignment_changed("partitions lost; their uncommitted records will be redelivered", partitions)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            state = self._partitions.pop((tp.topic, tp.partition), None)
            self._lag.forget(tp.topic, tp.partition)  # [lag] its series go with it
            if state is not None:
                self._blocked.discard(state)
        if self._carried:  # a partition assigned again starts from its committed offset, not from these
            gone = {(tp.topic, tp.partition) for tp in partitions}
            self._carried = [msg for msg in self._carried if (msg.topic(), msg.partition()) not in gone]

    def _assignment_changed(self, event: str, partitions: list[TopicPartition]) -> None:
        self.health.set_assignment(len(self._partitions))
        self.metrics.assigned_child.set(len(self._partitions))
        self._log.info(event, partitions=[f"{tp.topic}[{tp.partition}]" for tp in partitions])

    # -- client events -------------------------------------------------------------------------

    def _on_client_error(self, err: KafkaError) -> None:
        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self.health.set_connected(False)
            self.metrics.ready_child.set(0)
        if err.fatal():
            self._log.error("fatal Kafka client error; stopping", error=err.str())
            self.stop()
        else:
            self._log.warning("Kafka client error", error=err.str(), code=err.name())

    def _on_message_error(self, err: KafkaError) -> None:
        if err.fatal():
            raise KafkaException(err)
        self._log.warning("consumer error", error=err.str(), code=err.name())

    def _record_log(self, message: Message | None, msg: KafkaMessage) -> Any:
        fields: dict[str, Any] = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}
        if message is None:  # undecodable: the key is the record_id by convention
            key = msg.key()
            fields["record_id"] = key.decode("utf-8", "replace") if isinstance(key, bytes) else None
        else:
            fields.update(record_id=message.record_id, batch_id=message.batch_id)
            trace_id = trace_id_from_traceparent(message.header("traceparent"))
            if trace_id:
                fields["trace_id"] = trace_id
        return self._log.bind(**fields)

    def _max_poll_interval_s(self) -> float:
        configured = self.settings.connection.extra.get("max.poll.interval.ms")
        return int(configured) / 1000 if configured and configured.isdigit() else 300.0


def _headers_of(msg: KafkaMessage) -> tuple[tuple[str, bytes | None], ...]:
    """The record's headers; a ``DecodeError`` at ``$headers`` when a header name is not UTF-8.

    confluent-kafka (2.16) does not raise the ``UnicodeDecodeError`` of such a name from ``headers()``: it
    returns a list holding a NULL name with the error still set, and keeps that list for later calls. Called
    directly, the error surfaces at some unrelated later call (as a ``SystemError``) once the interpreter has
    specialised the call site; ``operator.call`` checks the result here. The list itself must never be touched
    again (reading the NULL name crashes the process), which is why :func:`_dlq_copy_headers` does not.
    """
    try:
        headers = operator.call(msg.headers)
    except (UnicodeDecodeError, SystemError) as exc:
        cause = exc if isinstance(exc, UnicodeDecodeError) else exc.__cause__
        if not isinstance(cause, UnicodeDecodeError):
            raise
        raise DecodeError(f"a header name is not UTF-8: {cause}", _HEADERS_PATH) from None
    return tuple(cast(list[tuple[str, bytes | None]], headers)) if headers else ()


def _dlq_copy_headers(msg: KafkaMessage, error: BaseException) -> list[tuple[str, bytes | None]]:
    """The record's headers for its DLQ copy; a record whose header names are not UTF-8 loses them there."""
    if isinstance(error, DecodeError) and error.path == _HEADERS_PATH:
        return []
    return list(cast(list[tuple[str, bytes | None]], msg.headers() or ()))


def _qualified(error: BaseException) -> str:
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}"


def _client_error_text(exc: BaseException) -> str:
    text = str(exc.args[0] if exc.args else exc)
    return text.split("\n", maxsplit=1)[0]
