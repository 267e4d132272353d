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
  synchronous on partition revoke and on shutdown, and never made for partitions reported lost. A partition
  whose every delivered record completed commits the client's position, so that transaction markers and
  aborted batches do not leave lag behind.
* ``process()`` runs on the poll thread, one record at a time per partition, in offset order. It may block
  for as long as ``max.poll.interval.ms`` allows (default 5 minutes). It may raise:
  :class:`~neotool_common.errors.PoisonMessageError` (dead-lettered at once), any other ``Exception``
  (retried with backoff, dead-lettered as ``retries_exhausted`` when attempts run out). A ``BaseException``
  that is not an ``Exception`` stops the runner; that record is neither committed nor dead-lettered.
* Retry backoffs never block the poll loop: the partition is paused and sought back to the record. Every
  pause has an owner that lifts it (:mod:`~neotool_common.consumer.flow`), across rebalances too.
* Records that cannot be decoded or break the schemas never reach ``process()``: they are dead-lettered
  with ``dlq.reason`` ``decode`` or ``validation`` and the failing JSON path.
* A fatal client error (a fenced static member, say) stops the runner with exit code 1.

Throughput modes (:mod:`~neotool_common.policies.throughput`, ``docs/throughput.md``): with ``max_concurrency``
above 1, an ``async def process()`` or a ``process_batch()``, records are handled by workers, in the order
``ordering`` asks; the contract above holds with "one record at a time per partition" replaced by that order,
and retries wait in the worker, holding back only the record's own chain. The machinery lives in
:mod:`neotool_common.consumer` (``docs/architecture.md``).
"""

from __future__ import annotations

import inspect
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import pydantic
from confluent_kafka import Consumer, Producer
from prometheus_client import REGISTRY, CollectorRegistry

from neotool_common.batches.settings import BatchSettings
from neotool_common.batches.summary import BatchSummary
from neotool_common.clock import Clock, SystemClock
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer.batch_watch import BatchWatch
from neotool_common.consumer.context import RunContext
from neotool_common.consumer.engine import Engine
from neotool_common.consumer.handlers import Handlers
from neotool_common.consumer.tiers.assembly import check_key_order
from neotool_common.deadletter.circuit import CircuitBreaker
from neotool_common.errors import CircuitOpenError, ConfigurationError, FatalClientError, HandlerContractError
from neotool_common.observability.health import HealthState
from neotool_common.observability.logs import configure_logging, get_logger, register_secret
from neotool_common.observability.metrics import BatchMetrics, ConsumerMetrics
from neotool_common.records.message import Message
from neotool_common.records.validation import EnvelopeReader, SchemaSource

__all__ = ["KafkaConsumerRunner"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIGURATION = 2
EXIT_CIRCUIT_OPEN = 3


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
    # Announce batches that became settled for the group (docs/batches.md); BATCH_ANNOUNCE overrides it.
    announce_batches: ClassVar[bool] = False
    # Delay tiers after the in-place retries (docs/retry-topics.md); RETRY_TOPIC_* override them.
    retry_topic_delays_ms: ClassVar[tuple[int, ...]] = ()
    retry_topic_key_order: ClassVar[bool] = False

    def __init__(
        self,
        settings: RunnerSettings | None = None,
        *,
        registry: CollectorRegistry | None = None,
        clock: Clock | None = None,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
        producer_factory: Callable[[dict[str, Any]], Any] = Producer,
        batch_settings: BatchSettings | None = None,
    ) -> None:
        self.settings = settings if settings is not None else RunnerSettings.from_env(defaults_from=type(self))
        self.batch_settings = batch_settings or BatchSettings.from_env(announce=self.announce_batches)
        self.registry = registry if registry is not None else REGISTRY
        self.metrics = ConsumerMetrics(self.registry, self.settings.group_id)
        clock = clock or SystemClock()
        self.health = HealthState(_max_poll_interval_s(self.settings), clock=clock.monotonic)
        name = self.task_name or type(self).__name__
        log = get_logger("neotool_common.consumer", group=self.settings.group_id, task_name=name)
        self._log = log
        self._ctx = RunContext(
            self.settings, clock, self.metrics, self.health, CircuitBreaker(self.settings.circuit), log
        )
        handlers = Handlers.of(self, KafkaConsumerRunner)
        _check_async_hooks(type(self), handlers.is_async)
        check_key_order(self.settings, handlers)
        reader = EnvelopeReader(self.payload_schema, self.payload_model, fast_path=self.settings.record_decoder)
        self._engine = Engine(self._ctx, handlers, reader, self.registry, consumer_factory, producer_factory)
        for secret in (self.settings.connection.sasl_password, self.settings.connection.ssl_key_password):
            if secret is not None:
                register_secret(secret.reveal())

    # -- hooks ---------------------------------------------------------------------------------

    def setup(self) -> Any:
        """Called once before the first record (open connections, run migrations); may raise to stop the start.

        May be ``async def`` when ``process()`` (or ``process_batch()``) is: it then runs on the runner's event
        loop, where clients bound to a loop (an asyncpg pool, an aiohttp session) must be created.
        """

    def teardown(self) -> Any:
        """Called once after the last commit and after the consumer left its group (close connections).

        May be ``async def`` like :meth:`setup`; it then runs on the event loop, bounded by ``SHUTDOWN_GRACE_MS``.
        """

    def process(self, message: Message) -> Any:
        """Handle one validated record. Must be idempotent on ``message.record_id``: records can be redelivered.

        May be ``async def``: it then runs on the runner's event loop, ``max_concurrency`` records at a time.
        With ``max_concurrency`` above 1 a plain ``def`` runs on that many worker threads at once. A plain
        ``def`` that returns an awaitable (a decorator that hides an ``async def``) stops the runner (exit 1).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement process()")

    def process_batch(self, messages: list[Message]) -> Any:
        """Optional: handle up to ``batch_size`` validated records at once (one database round trip, say).

        Records of one ordering chain come in offset order. Returning completes them all; raising any exception
        sends each record through ``process()`` by itself (or a batch of one when ``process()`` is not
        defined), so that only the bad ones are retried or dead-lettered. May be ``async def``, like ``process()``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement process_batch()")

    def on_batch_complete(self, summary: BatchSummary) -> None:
        """Optional: the job's follow-up when a batch became settled for the group (``BATCH_ANNOUNCE=true``).

        Called on the batch watch's thread, never the poll thread, by the member that announces the batch, before
        the announcement is published. May raise: nothing is announced then, and it is called again on the next
        refresh. May run more than once for one batch (a rebalance, a restart): make it idempotent on
        ``summary.idempotency_key`` (``<batch_id>/<group>``).
        """

    def redact_failure(self, text: str) -> str:
        """Optional: mask personal data in an exception's message or stack trace before it is dead-lettered.

        Called on the poll thread with each text bound for the ``dlq.exception.message`` and
        ``dlq.exception.stacktrace`` headers and the dead-letter log line; the default keeps it. Must not raise.
        The record's payload itself is kept whole in the DLQ copy (a replay needs it).
        """
        return text

    # -- lifecycle -----------------------------------------------------------------------------

    @classmethod
    def main(cls, env: Mapping[str, str] | None = None) -> int:
        """Console-script entry point: configuration from the environment, signals, and an exit code.

        0 stopped cleanly; 1 failed (a fatal client error, a broken hook contract); 2 configuration error (one
        line on stderr); 3 circuit breaker open.
        """
        try:
            settings = RunnerSettings.from_env(env, defaults_from=cls)
            configure_logging(settings.log_level, settings.log_format)
            runner = cls(settings, batch_settings=BatchSettings.from_env(env, announce=cls.announce_batches))
        except ConfigurationError as exc:
            _print_configuration_error(cls.__name__, exc)
            return EXIT_CONFIGURATION
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda received, _: runner._engine.stop(signal.Signals(received).name))
        return runner.run_to_exit_code()

    def run_to_exit_code(self) -> int:
        """:meth:`run`, with what ended it as the process exit code (see :meth:`main`)."""
        try:
            self.run()
        except ConfigurationError as exc:
            _print_configuration_error(type(self).__name__, exc)
            return EXIT_CONFIGURATION
        except CircuitOpenError:
            return EXIT_CIRCUIT_OPEN
        except (FatalClientError, HandlerContractError) as exc:
            self._log.error("consumer failed; exiting", error=str(exc), exception_type=type(exc).__name__)
            return EXIT_FAILED
        except Exception:  # noqa: BLE001 - the process exit code is the answer; the log has the traceback
            self._log.exception("consumer failed")
            return EXIT_FAILED
        return EXIT_OK

    def stop(self) -> None:
        """Ask the runner to finish the current record, commit and close. Safe from any thread or signal handler."""
        self._engine.stop()

    def run(self) -> None:
        """Consume until :meth:`stop`; raises ``CircuitOpenError`` when dead-lettering runs away."""
        watch = self._batch_watch()
        try:
            self._engine.run(self._run_setup, self._run_teardown)
        except CircuitOpenError as exc:
            self.metrics.circuit_open_child.set(1)
            self._log.error("circuit breaker open: stopping instead of dead-lettering the topic", reason=str(exc))
            raise
        finally:
            if watch is not None:
                watch.stop()

    def _batch_watch(self) -> BatchWatch | None:
        if not self.batch_settings.announce:
            return None
        metrics = BatchMetrics(self.registry, self.settings.group_id)
        watch = BatchWatch(
            self.settings, self.batch_settings, metrics, self._log, self._ctx.ownership, self.on_batch_complete
        )
        watch.start()
        return watch

    @property
    def assignment(self) -> frozenset[tuple[str, int]]:
        """The ``(topic, partition)`` pairs assigned to this member now (safe from any thread)."""
        return self._ctx.ownership.snapshot()[1]

    @property
    def records_processed(self) -> int:
        return self._ctx.tally.processed

    @property
    def records_dead_lettered(self) -> int:
        return self._ctx.tally.dead_lettered

    def _run_setup(self) -> None:
        self._call_hook(self.setup, None)

    def _run_teardown(self) -> None:
        self._call_hook(self.teardown, self.settings.shutdown_grace_s)

    def _call_hook(self, hook: Callable[[], Any], timeout: float | None) -> None:
        result = hook()
        if inspect.iscoroutine(result):
            workers = self._engine.workers
            assert workers is not None, "async hooks come with async handlers, which have workers"
            workers.run_coroutine(result, timeout)


def _print_configuration_error(name: str, exc: ConfigurationError) -> None:
    """One line on stderr per bad setting."""
    for line in str(exc).splitlines():
        print(f"{name}: configuration error: {line}", file=sys.stderr)  # noqa: T201 - the CLI's answer


def _check_async_hooks(kind: type, handlers_async: bool) -> None:
    """``async def`` setup or teardown run on the handlers' event loop, so they need async handlers."""
    hooks = [name for name in ("setup", "teardown") if inspect.iscoroutinefunction(getattr(kind, name))]
    if hooks and not handlers_async:
        raise TypeError(f"{kind.__name__}: async def {' and '.join(hooks)}() needs an async def process()")


def _max_poll_interval_s(settings: RunnerSettings) -> float:
    configured = settings.connection.extra.get("max.poll.interval.ms")
    return int(configured) / 1000 if configured and configured.isdigit() else 300.0
