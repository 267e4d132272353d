"""Publishing records: standard envelopes for publishers, raw bytes for tools and tests, nothing lost on failure.

Public API::

    new_batch_id() -> str                                  a UUIDv7, increasing within the process
    build_envelope(payload, *, record_id, batch_id=None, ingested_at=None) -> dict
    EnvelopeProducer(connection, *, spool=None, extra_config=None, on_acknowledged=None, clock=None)
    EnvelopeProducer.from_env(env=None, **options)          KAFKA_* and, when set, PRODUCER_SPOOL_DIR
        .batch_id                                           the producer's UUIDv7, used unless given one
        .publish(topic, payload, *, record_id, batch_id=None, key=None, headers=None) -> dict (the envelope)
        .publish_raw(topic, value, key=None, headers=None)  bytes as they are (e.g. poison for a demo)
        .flush(timeout=30.0) -> DeliveryReport              delivered / failed / spooled / pending
        .totals -> DeliveryReport                           the same, since the producer was made
        .resend_spooled(timeout=30.0) -> int                re-publish the spool, drop what was acknowledged
        .close(timeout=30.0) -> DeliveryReport              also on leaving ``with``
        .batch(topic, *, batch_id=None, part=None, expected_parts=1) -> BatchPublication

``on_acknowledged`` receives an :class:`Acknowledgement` (topic, partition, offset, key) per acknowledged record.

Settings (platform standard §4.3, :meth:`KafkaConnection.producer_config`): ``extra_config`` overrides them and
``KAFKA_CONFIG_*`` overrides both; a result that breaks the standard (:func:`check_producer_config`) raises
:class:`~neotool_common.errors.ConfigurationError` at construction.

Delivery is asynchronous: the outcome of ``publish`` is known when a later ``publish``, ``flush`` or ``close``
serves the delivery reports; librdkafka retries until ``delivery.timeout.ms``, and a final failure is never
silent: with a :class:`~neotool_common.producing.spool.Spool` the record is appended to it (``spooled``) and
:meth:`EnvelopeProducer.resend_spooled` publishes it again; without one (or when the spool write fails)
:meth:`EnvelopeProducer.flush` raises :class:`DeliveryError` naming it. Records unanswered when ``close()`` gives
up are treated the same way; they may still have reached the broker, so delivery is at-least-once and consumers
key their writes on ``record_id``. Only non-secret settings are logged, and records by topic and error only.

``batch(topic)`` publishes a batch, then its manifest (:mod:`neotool_common.producing.batch`, docs/batches.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, Final, Self

import structlog
from confluent_kafka import KafkaException, Producer

from neotool_common.batches.tracker import BatchTracker
from neotool_common.config.clients import ClientKind, for_client
from neotool_common.config.connection import KafkaConnection
from neotool_common.errors import ConfigurationError
from neotool_common.producing.batch import BatchPublication
from neotool_common.producing.config import check_producer_config, loggable_settings
from neotool_common.producing.delivery import (
    Acknowledgement,
    DeliveryError,
    DeliveryReport,
    FailedDelivery,
    describe_error,
)
from neotool_common.producing.envelope import build_envelope, encode_envelope, new_batch_id
from neotool_common.producing.headers import HeaderInput, as_bytes, normalize_headers
from neotool_common.producing.ledger import Ledger, Outgoing, spool_failure
from neotool_common.producing.protocols import ProducerLike, SystemWallClock, WallClock
from neotool_common.producing.spool import SPOOL_DIR_ENV, Spool

__all__ = [
    "Acknowledgement",
    "DeliveryError",
    "DeliveryReport",
    "EnvelopeProducer",
    "FailedDelivery",
    "ProducerLike",
    "WallClock",
    "build_envelope",
    "check_producer_config",
    "new_batch_id",
]

_log = structlog.get_logger(__name__)

_QUEUE_FULL_WAIT_S: Final = 0.1
ABANDONED_AT_CLOSE: Final = "not acknowledged before close() gave up waiting"


class EnvelopeProducer:
    """An idempotent, ``acks=all`` producer that spools (or reports) whatever it finally cannot deliver.

    Thread-safe: any thread may publish, and delivery reports are served by whichever thread calls
    ``publish``, ``flush`` or ``close``. ``on_acknowledged`` is called from those calls, once per record the
    broker acknowledged (re-sent ones included), and must not block. ``clock.time()`` stamps ``ingested_at``
    and ``failed_at``. ``batch_id`` (a fresh UUIDv7 per producer) is used by ``publish`` unless it is given one.
    """

    def __init__(
        self,
        connection: KafkaConnection,
        *,
        spool: Spool | None = None,
        extra_config: Mapping[str, str | int | bool] | None = None,
        on_acknowledged: Callable[[Acknowledgement], object] | None = None,
        clock: WallClock | None = None,
        producer_factory: Callable[[dict[str, Any]], ProducerLike] = Producer,
    ) -> None:
        overrides = for_client(ClientKind.PRODUCER, connection.extra)  # a consumer's KAFKA_CONFIG_* stay out
        config: dict[str, Any] = {**connection.producer_config(), **(extra_config or {}), **overrides}
        check_producer_config(config)
        self._producer = producer_factory(config)
        self._spool = spool
        self._on_acknowledged = on_acknowledged
        self._clock: WallClock = SystemWallClock() if clock is None else clock
        self.batch_id = new_batch_id()
        self._ledger = Ledger()
        self._closed = False
        _log.info("producer.created", **loggable_settings(config), spool=None if spool is None else str(spool.path))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **options: Any) -> Self:
        """Connection from ``KAFKA_*``, and a spool in ``PRODUCER_SPOOL_DIR`` when that is set."""
        env = os.environ if env is None else env
        spool = Spool.from_env(env) if env.get(SPOOL_DIR_ENV, "").strip() else None
        return cls(KafkaConnection.from_env(env), spool=spool, **options)

    # -- publishing -------------------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        payload: Mapping[str, Any],
        *,
        record_id: str,
        batch_id: str | None = None,
        key: str | bytes | None = None,
        headers: HeaderInput | None = None,
        tracker: BatchTracker | None = None,
    ) -> dict[str, Any]:
        """Queue ``payload`` in an envelope, keyed by ``record_id`` unless ``key`` is given; returns the envelope.

        Raises ``ValueError``/``TypeError`` for a bad envelope (see :func:`build_envelope`) and
        ``RuntimeError`` after ``close()``. May block briefly while librdkafka's queue is full. ``tracker`` (a
        batch's, see :meth:`batch`) hears the record's final outcome.
        """
        moment = datetime.fromtimestamp(self._clock.time(), UTC)
        envelope = build_envelope(
            payload, record_id=record_id, batch_id=self.batch_id if batch_id is None else batch_id, ingested_at=moment
        )
        value, key = encode_envelope(envelope), record_id if key is None else key
        self.publish_raw(topic, value, key=key, headers=headers, tracker=tracker)
        return envelope

    def publish_raw(
        self,
        topic: str,
        value: bytes | None,
        key: str | bytes | None = None,
        headers: HeaderInput | None = None,
        tracker: BatchTracker | None = None,
    ) -> None:
        """Queue ``value`` exactly as given (any bytes, or ``None`` for a tombstone); same guarantees as ``publish``."""
        self._require_open()
        self._send(Outgoing(topic, as_bytes(key), value, normalize_headers(headers), tracker=tracker))

    def batch(
        self, topic: str, *, batch_id: str | None = None, part: str | None = None, expected_parts: int = 1
    ) -> BatchPublication:
        """A batch of ``topic`` (a new ``batch_id`` unless given) whose manifest is published when it is closed."""
        return BatchPublication(self, topic, batch_id=batch_id, part=part, expected_parts=expected_parts)

    # -- outcomes ---------------------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> DeliveryReport:
        """Wait up to ``timeout`` seconds for every queued record; report what happened since the last report.

        Raises :class:`DeliveryError` if any record finally failed without being spooled (the counts are on
        the exception). Records still unanswered at the timeout are ``pending`` and reported later.
        """
        self._producer.flush(timeout)
        self._settle_resent()
        report, failures = self._ledger.take_report()
        if failures:
            raise DeliveryError(report, tuple(failures))
        return report

    @property
    def totals(self) -> DeliveryReport:
        """Counts since this producer was made (``pending`` is the current number)."""
        return self._ledger.totals()

    def resend_spooled(self, timeout: float = 30.0) -> int:
        """Publish every spooled record again and remove those the broker acknowledged; returns how many.

        Waits up to ``timeout`` s. A record that fails again, or is unanswered then, stays in the spool as it was
        (a later ``flush`` removes it once acknowledged). :class:`ConfigurationError` when there is no spool.
        """
        spool = self._require_spool()
        self._require_open()
        resending = self._ledger.resending()
        for record in spool.records():
            if record.entry_id not in resending:
                self._send(Outgoing(record.topic, record.key, record.value, record.headers, record.entry_id))
        self._producer.flush(timeout)
        return self._settle_resent()

    def close(self, timeout: float = 30.0) -> DeliveryReport:
        """Flush, then give up on records still unanswered after ``timeout`` as final failures; idempotent.

        Raises :class:`DeliveryError` like :meth:`flush`.
        """
        if self._closed:
            return DeliveryReport()
        self._closed = True
        self._producer.flush(timeout)
        for outgoing in self._ledger.abandon_all():  # re-sends given up on are still in the spool
            self._final_failure(outgoing, ABANDONED_AT_CLOSE)
        return self.flush(0)

    def __len__(self) -> int:
        """Records queued or in flight, re-sends included."""
        return len(self._ledger)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------

    def _send(self, outgoing: Outgoing) -> None:
        sequence = self._ledger.track(outgoing)
        try:
            self._produce(outgoing, partial(self._on_delivery, sequence))
        except KafkaException as exc:  # refused before queueing (e.g. too large): as final as a failed delivery
            self._on_delivery(sequence, exc.args[0] if exc.args else exc, None)
        except BaseException:  # e.g. a TypeError for a bad value: the caller sees it, nothing is queued
            self._ledger.forget(sequence)
            raise
        self._producer.poll(0)

    def _produce(self, outgoing: Outgoing, on_delivery: Callable[[Any, Any], None]) -> None:
        while True:
            try:
                self._producer.produce(
                    outgoing.topic,
                    value=outgoing.value,
                    key=outgoing.key,
                    headers=[(name, value) for name, value in outgoing.headers] or None,
                    on_delivery=on_delivery,
                )
            except BufferError:  # librdkafka's queue is full: serve delivery reports until there is room
                self._producer.poll(_QUEUE_FULL_WAIT_S)
            else:
                return

    def _on_delivery(self, sequence: int, error: object, message: Any) -> None:
        outgoing = self._ledger.answered(sequence)
        if outgoing is None:
            return  # given up at close(); already counted
        if error is None:
            self._acknowledged(outgoing, message)
        elif outgoing.entry_id is not None:
            _log.warning("producer.resend_failed", topic=outgoing.topic, error=describe_error(error))
        else:
            self._final_failure(outgoing, describe_error(error))

    def _acknowledged(self, outgoing: Outgoing, message: Any) -> None:
        self._ledger.delivered(outgoing, message.partition(), message.offset())
        if self._on_acknowledged is not None:
            self._on_acknowledged(
                Acknowledgement(message.topic(), message.partition(), message.offset(), message.key())
            )

    def _final_failure(self, outgoing: Outgoing, error: str) -> None:
        spooled, problem = spool_failure(self._spool, outgoing, error, datetime.fromtimestamp(self._clock.time(), UTC))
        self._ledger.failed(outgoing, spooled, problem)
        if spooled:
            _log.warning("producer.record_spooled", topic=outgoing.topic, error=error)
        else:
            _log.error("producer.record_not_delivered", topic=outgoing.topic, error=problem)

    def _settle_resent(self) -> int:
        acknowledged = self._ledger.take_resend_acknowledged()
        if not acknowledged or self._spool is None:
            return 0
        try:
            removed = self._spool.remove(acknowledged)
        except BaseException:
            self._ledger.restore_resend_acknowledged(acknowledged)
            raise
        _log.info("producer.spool_resent", removed=removed, remaining=len(self._spool))
        return removed

    def _require_open(self) -> None:
        if self._closed:
            raise RuntimeError("this EnvelopeProducer is closed")

    def _require_spool(self) -> Spool:
        if self._spool is None:
            raise ConfigurationError(SPOOL_DIR_ENV, "this producer has no spool, so there is nothing to re-send")
        return self._spool
