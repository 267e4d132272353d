"""What the Kafka clients report on their own: connection trouble, and errors nothing can recover from.

A fatal error of the consumer (a static member fenced by a newer one with its ``group.instance.id``, say) or
of the dead-letter producer (an idempotent producer fenced or out of sequence) ends the runner: one ERROR
line naming the cause, then exit code 1, so that the orchestrator restarts it instead of keeping a zombie
that polls and commits nothing. Transient errors (brokers down) only make ``/readyz`` answer not ready, and
are logged rate-limited: the first, then one line per ``REPEAT_WINDOW_S`` with ``repeats`` and how long
(``cannot reach KAFKA_BROKERS=… for 30 s``). Refused authentication is transient to librdkafka but not to the
runner: see :mod:`.authentication`.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError

from neotool_common.config.client_logs import Repeat, RepeatLimiter
from neotool_common.consumer.authentication import AUTHENTICATION_ERRORS, AuthenticationWatch
from neotool_common.consumer.context import RunContext
from neotool_common.errors import FatalClientError

__all__ = ["ClientEvents"]

_DISCONNECTED = (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT)
# The consumer is not allowed what it exists for: no retry fixes that, an ACL does (and a restart applies it).
_NOT_AUTHORIZED = {
    KafkaError.GROUP_AUTHORIZATION_FAILED: "READ on the consumer group",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "READ on the source topics",
}


class ClientEvents:
    def __init__(self, ctx: RunContext) -> None:
        self._ctx = ctx
        self._repeats = RepeatLimiter()
        self.fatal: FatalClientError | None = None
        self.authentication = AuthenticationWatch(ctx)

    def on_error(self, err: KafkaError) -> None:
        """The clients' ``error_cb`` (runs inside ``consume()``/``poll()``)."""
        if err.code() in AUTHENTICATION_ERRORS:
            fatal = self.authentication.failed(err)
            if fatal is not None:
                self._fail(fatal)
            return
        if err.code() in _DISCONNECTED:
            self._ctx.health.set_connected(False)
            self._ctx.metrics.ready_child.set(0)
        if err.fatal() or err.code() == KafkaError._FATAL:
            self.failed(err)
            return
        repeat = self._repeats.admit(("error_cb", err.code()))
        if repeat is None:
            return
        if err.code() in _DISCONNECTED:
            brokers = self._ctx.settings.connection.brokers
            lasting = f" for {round(repeat.for_s)} s" if repeat.repeats > 1 else ""
            self._ctx.log.warning(f"cannot reach KAFKA_BROKERS={brokers}{lasting}", **_fields(err, repeat))
        else:
            self._ctx.log.warning("Kafka client error", **_fields(err, repeat))

    def on_message_error(self, err: KafkaError, topic: str | None = None) -> None:
        """An error ``consume()`` returned in place of a record (``topic``: the topic it is about, if any)."""
        if err.fatal() or err.code() == KafkaError._FATAL:
            self.failed(err)
            return
        needed = _NOT_AUTHORIZED.get(err.code())
        if needed is not None:
            if err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED and topic:
                needed = f"READ on topic {topic} ({self._kind_of(topic)})"
            self._fail(
                FatalClientError(
                    f"not authorized ({err.name()}): {err.str()}; the principal needs {needed} "
                    "(docs/operating.md, Security)"
                )
            )
            return
        repeat = self._repeats.admit(("consume", err.code()))
        if repeat is not None:
            self._ctx.log.warning("consumer error", **_fields(err, repeat))

    def _kind_of(self, topic: str) -> str:
        return "a source topic" if topic in self._ctx.settings.topics else "a retry tier topic of the group"

    def failed(self, err: KafkaError) -> None:
        """Remember the first fatal error; the loop stops at its next turn and :meth:`raise_if_fatal` ends it."""
        self._fail(FatalClientError(f"fatal Kafka client error ({err.name()}): {err.str()}"))

    def producer_failed(self, text: str) -> None:
        """The dead-letter producer failed for good (with WRITE on no topic, say, it never gets a producer id)."""
        self._fail(FatalClientError(text))

    def _fail(self, error: FatalClientError) -> None:
        """The first fatal error is the one raised; no record is begun after it (``ctx.stopping``)."""
        if self.fatal is None:
            self.fatal = error
        self._ctx.stopping = True

    def raise_if_fatal(self) -> None:
        if self.fatal is not None:
            raise self.fatal


def _fields(err: KafkaError, repeat: Repeat) -> dict[str, Any]:
    fields: dict[str, Any] = {"error": err.str(), "code": err.name()}
    if repeat.repeats > 1:
        fields.update(repeats=repeat.repeats, for_s=round(repeat.for_s))
    return fields
