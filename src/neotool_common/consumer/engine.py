"""The engine of :class:`~neotool_common.consumer_base.KafkaConsumerRunner`: the poll loop and its lifecycle.

One loop turn: resume partitions whose retry is due, serve dead-letter acknowledgements, ``consume()`` a batch
(rebalance callbacks run inside it), hand each record to the :class:`RecordHandler`, apply the workers' completions,
then the after-batch work: counters, backpressure, readiness, lag, commits, progress, the held-back log lines. The
parts it composes each own one concern; see ``docs/architecture.md`` for the table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from neotool_common.consumer.batches import Batches
from neotool_common.consumer.client_events import ClientEvents
from neotool_common.consumer.commits import Commits
from neotool_common.consumer.context import Key, RunContext
from neotool_common.consumer.deadletters import DeadLetters
from neotool_common.consumer.flow import PartitionFlow
from neotool_common.consumer.handlers import Handlers
from neotool_common.consumer.handling import RecordHandler
from neotool_common.consumer.lag import LagMonitor
from neotool_common.consumer.partition import PartitionState
from neotool_common.consumer.rebalance import Rebalance
from neotool_common.consumer.retries import Retries
from neotool_common.consumer.startup import effective_settings, make_client, warn_about_missing_dlq_topics
from neotool_common.consumer.tiers.assembly import gate_for
from neotool_common.consumer.topic_check import SourceTopics
from neotool_common.consumer.workers import ParallelProcessing
from neotool_common.observability.health import HealthServer
from neotool_common.records.validation import EnvelopeReader

__all__ = ["Engine"]

PARALLEL_POLL_TIMEOUT_S = 0.005  # while workers hold records: consume() blocks no longer, so completions apply soon
# After a broker outage, how often the loop asks the cluster whether it is back.
RECONNECT_PROBE_S = 5.0


class Engine:
    """Runs one consumer: connect, subscribe, loop until stopped, then drain, commit and close (bounded)."""

    def __init__(
        self,
        ctx: RunContext,
        handlers: Handlers,
        reader: EnvelopeReader,
        registry: Any,
        consumer_factory: Callable[[dict[str, Any]], Any],
        producer_factory: Callable[[dict[str, Any]], Any],
    ) -> None:
        self.ctx = ctx
        self._handlers = handlers
        self._reader = reader
        self._registry = registry
        self._consumer_factory = consumer_factory
        self._producer_factory = producer_factory
        self.events = ClientEvents(ctx)
        self.workers = ParallelProcessing.create(ctx, handlers)
        self.lag = LagMonitor.for_runner(ctx.settings, ctx.metrics)
        self.stop_requested = False
        self.stop_reason = ""
        self._last_progress = 0.0
        self._last_reconnect_probe = 0.0

    # -- lifecycle ---------------------------------------------------------------------------------

    def run(self, setup: Callable[[], None], teardown: Callable[[], None]) -> None:
        """Consume until :meth:`stop`; raises what ended the run (circuit open, a fatal client error, ...)."""
        self._connect()
        # record_decoder: the fast path's build in use (compiled, or interpreted and why), not just the setting
        self.ctx.log.info(
            "consumer starting", **effective_settings(self.ctx.settings), record_decoder=self._reader.fast_path
        )
        server = self._start_health_server()
        ctx = self.ctx
        try:
            if self.workers is not None:
                self.workers.start()  # first: an async def setup() runs on the workers' event loop
            setup()
            known = warn_about_missing_dlq_topics(ctx, self.consumer)
            if known is not None:
                self.source_topics.check(ctx.clock.monotonic(), known)
            self.consumer.subscribe(
                list(ctx.settings.subscription),
                on_assign=self.rebalance.on_assign,
                on_revoke=self.rebalance.on_revoke,
                on_lost=self.rebalance.on_lost,
            )
            ctx.health.set_running(True)
            ctx.log.info("consumer started", topics=list(ctx.settings.subscription))
            self._loop()
            self.events.raise_if_fatal()
        finally:
            ctx.health.set_running(False)
            ctx.metrics.ready_child.set(0)
            self._shutdown(teardown)
            if server is not None:
                server.close()

    def stop(self, reason: str = "stop() called") -> None:
        """Safe from a signal handler: only sets flags; the loop logs the request when it sees it."""
        self.stop_reason = self.stop_reason or reason
        self.stop_requested = self.ctx.stopping = True

    def _connect(self) -> None:
        ctx = self.ctx
        consumer_config = ctx.settings.consumer_config()
        producer_config = ctx.settings.dlq_producer_config()
        producer_config.update(error_cb=self.events.on_error)
        consumer_config.update(on_commit=self._on_commit, error_cb=self.events.on_error)
        self.consumer = make_client(self._consumer_factory, consumer_config, ctx.settings)
        try:
            producer = make_client(self._producer_factory, producer_config, ctx.settings)
        except BaseException:
            self.consumer.close()
            raise
        self.lag.consumer = self.consumer
        self.flow = PartitionFlow(self.consumer, self._pause_changed)
        self.source_topics = SourceTopics(ctx, self.consumer)
        self.retries = Retries(ctx, self.consumer, self.flow)
        self.dead_letters = DeadLetters(ctx, producer, self.flow, self.events.producer_failed, self._handlers.redact)
        self.commits = Commits(ctx, self.consumer, self._settled, self.events.failed, self.lag.committed)
        self.handler = RecordHandler(
            ctx, self._reader, self._handlers.process, self.dead_letters, self.retries, self.workers
        )
        if self.workers is not None:
            self.workers.bind(self.flow, self.dead_letters, self.handler.run)
        handle = gate_for(ctx, self.retries, self.dead_letters, self.handler.handle_record, self._handlers.redact)
        budget_s = min(ctx.settings.commit.interval_s, ctx.health.max_poll_interval_s / 2)
        self.batches = Batches(ctx, handle, self.events.on_message_error, budget_s)
        self.rebalance = Rebalance(
            ctx, self.flow, self.commits, self.dead_letters, self.retries, self.workers, self._forget
        )

    def _on_commit(self, err: Any, partitions: list[TopicPartition]) -> None:
        self.commits.on_commit(err, partitions)

    def _pause_changed(self, key: Key, reasons: frozenset[str]) -> None:
        self.lag.set_paused(key[0], key[1], reasons)

    def _start_health_server(self) -> HealthServer | None:
        settings = self.ctx.settings
        if not settings.metrics_port:
            return None
        server = HealthServer(settings.metrics_port, self._registry, self.ctx.health, host=settings.metrics_host)
        server.start()  # a port in use is a ConfigurationError naming METRICS_PORT
        return server

    def _shutdown(self, teardown: Callable[[], None]) -> None:
        """Drain (bounded by ``SHUTDOWN_GRACE_MS``), commit, leave the group, then ``teardown()``."""
        ctx = self.ctx
        grace = ctx.settings.shutdown_grace_s
        started = ctx.clock.monotonic()
        if self.stop_requested:
            ctx.log.info("stop requested; draining", reason=self.stop_reason, grace_ms=round(grace * 1000))

        def left() -> float:
            return max(0.0, grace - (ctx.clock.monotonic() - started))

        if self.workers is not None:
            self.workers.stop(grace)
        publisher = self.dead_letters.publisher
        pending = publisher.drain(left())
        if pending:
            ctx.log.warning(
                "dead-letter writes still unacknowledged at shutdown; their records will be redelivered",
                pending=pending,
            )
        if self.events.fatal is None:
            self.commits.commit(asynchronous=False)
        self._close_clients()
        publisher.drain(left())
        del self.dead_letters
        ctx.record_lines.tick(ctx.clock.monotonic(), final=True)
        try:
            teardown()  # before the workers close: an async def teardown() runs on their event loop
        finally:
            if self.workers is not None:
                self.workers.close(max(1.0, left()))
        ctx.log.info(
            "consumer stopped",
            records_processed=ctx.tally.processed,
            records_dead_lettered=ctx.tally.dead_lettered,
            drained_in_s=round(ctx.clock.monotonic() - started, 3),
        )

    def _close_clients(self) -> None:
        ctx = self.ctx
        ctx.closing = True
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError) as exc:
            ctx.log.warning("closing the consumer failed", error=str(exc))
        self.lag.close()  # drops its admin client here, on this thread
        # Drop the clients here, on this thread: left to the garbage collector, librdkafka's destroy would run
        # on whichever thread collects the cycle (the clients hold callbacks bound to this engine), at exit
        # perhaps, after the broker is gone. The batches' record handler and the lag monitor hold them too.
        del self.consumer, self.commits, self.rebalance, self.retries, self.flow, self.handler, self.batches
        del self.source_topics
        self.lag.consumer = None

    # -- the poll loop -----------------------------------------------------------------------------

    def _loop(self) -> None:
        ctx = self.ctx
        consumer = self.consumer
        publisher = self.dead_letters.publisher
        retries = self.retries
        batch_size = ctx.settings.batch_size
        clock = ctx.clock
        workers = self.workers
        batches = self.batches
        self._last_progress = clock.monotonic()
        while not ctx.stopping:  # set by stop() and by a fatal client error (ClientEvents)
            now = clock.monotonic()
            if retries.waiting:
                retries.resume_due(now)
            publisher.poll()
            carried = batches.carried
            wanted = max(1, batch_size - carried) if workers is None else workers.fetch_limit(batch_size - carried)
            messages = consumer.consume(wanted, 0.0)
            if not messages and not carried:
                # consume(n, timeout) waits for n records or the timeout, which at a low rate would hold every
                # record for the whole timeout: wait for the first one only; the next turn takes the rest.
                messages = consumer.consume(1, self._poll_timeout(now))
            ctx.health.poll_tick(clock.monotonic())
            if carried:  # what is left of it after the rebalance callbacks consume() may have run
                messages = batches.take_carried(messages)
            if messages:
                batches.handle(messages)
            if workers is not None:
                workers.turn()
            self._after_batch(clock.monotonic())

    def _poll_timeout(self, now: float) -> float:
        timeout = self.retries.next_due_in(now, self.ctx.settings.poll_timeout_s)
        if self.workers is not None and self.workers.busy:
            timeout = min(timeout, PARALLEL_POLL_TIMEOUT_S)
        resend = self.dead_letters.publisher.next_resend_in(now)
        return timeout if resend is None else min(timeout, resend)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        """Partitions revoked or lost: their lag series, and records fetched for them but not reached, go."""
        for tp in partitions:
            self.lag.forget(tp.topic, tp.partition)
        self.batches.forget(partitions)

    def _settled(self, state: PartitionState) -> bool:
        """True when every record the client delivered for ``state`` completed: its position may be committed."""
        if state.blocked or (self.workers is not None and self.workers.holds_records(state)):
            return False
        return not self.batches.holds(state)

    # -- after every batch -------------------------------------------------------------------------

    def _after_batch(self, now: float) -> None:
        ctx = self.ctx
        tally = ctx.tally
        completed = 0
        apply_backpressure = self.dead_letters.apply_backpressure
        for state in ctx.partitions.values():
            if state.processed_unflushed:
                state.metrics.processed.inc(state.processed_unflushed)
                completed += state.processed_unflushed
                state.processed_unflushed = 0
            apply_backpressure(state)
        tally.processed += completed
        tally.since_commit += completed
        ctx.circuit.observe(completed + tally.turn_dead, tally.turn_dead)
        tally.turn_dead = 0
        ctx.metrics.dlq_pending_child.set((publisher := self.dead_letters.publisher).pending)
        ctx.record_lines.tick(now)
        self._refresh_readiness(now)
        self.source_topics.maybe_check(now)
        self.lag.tick(now, ctx.partitions)
        self.commits.maybe_commit(now)
        if now - self._last_progress >= ctx.settings.progress_interval_s:
            self._last_progress = now
            ctx.log.info(
                "progress",
                records_processed=tally.processed,
                records_dead_lettered=tally.dead_lettered,
                partitions=len(ctx.partitions),
                dlq_pending=publisher.pending,
            )

    def _refresh_readiness(self, now: float) -> None:
        """Keep the ready gauge equal to /readyz; after a broker outage, find out whether the cluster is back."""
        health = self.ctx.health
        if not health.readiness().connected and now - self._last_reconnect_probe >= RECONNECT_PROBE_S:
            self._last_reconnect_probe = now
            try:
                self.consumer.list_topics(timeout=0.5)
                health.set_connected(True)
            except KafkaException:
                pass
        self.ctx.metrics.ready_child.set(1 if health.readiness().ok else 0)
