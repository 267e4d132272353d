"""Dead-letter routing: a failed record goes to ``<topic>.dlq`` with its bytes intact and the reason attached.

A DLQ copy is stamped with the time it was dead-lettered, so that the DLQ topic's retention counts from
then; ``dlq.original.timestamp`` keeps the source record's timestamp. A dead-lettered record completes (its
offset becomes committable) only when the broker acknowledged the write. A write that fails — broker down,
topic missing, no permission — is sent again with backoff, for as long as it takes; meanwhile its partition
commits nothing past it. Header names: :mod:`.headers`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from neotool_common.clock import Clock
from neotool_common.deadletter.headers import (
    DLQ_ATTEMPTS,
    DLQ_CONSUMER_GROUP,
    DLQ_EXCEPTION_MESSAGE,
    DLQ_EXCEPTION_STACKTRACE,
    DLQ_EXCEPTION_TYPE,
    DLQ_FAILED_AT,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TIMESTAMP,
    DLQ_ORIGINAL_TOPIC,
    DLQ_PATH,
    DLQ_REASON,
    dlq_topic_for,
)
from neotool_common.deadletter.trace import format_trace
from neotool_common.policies.retry import RetryPolicy

__all__ = ["DeadLetter", "DeadLetterPublisher", "DlqPolicy"]

Headers = list[tuple[str, bytes | None]]


@dataclass(frozen=True)
class DlqPolicy:
    """How dead-letter writes behave.

    ``write_timeout_s`` bounds one write attempt (``DLQ_WRITE_TIMEOUT_MS``, default 30000); failed writes are
    sent again after ``resend_backoff`` waits, without limit. Stack traces and messages are cut to the
    given sizes so that a DLQ record stays well under the broker's message size limit.
    """

    write_timeout_s: float = 30.0
    resend_backoff: RetryPolicy = field(default_factory=lambda: RetryPolicy(1_000_000, 0.5, 30.0))
    max_stacktrace_chars: int = 8_000
    max_message_chars: int = 2_000


class Producer(Protocol):
    def produce(self, topic: str, value: Any = ..., key: Any = ..., **kwargs: Any) -> None: ...
    def poll(self, timeout: float = ...) -> int: ...
    def flush(self, timeout: float = ...) -> int: ...


@dataclass
class DeadLetter:
    """One record on its way to the DLQ (or a retry topic). ``on_acked`` runs on the poll thread once the broker has it.

    ``timestamp_ms`` is the source record's timestamp (it is in the ``dlq.original.timestamp`` header); the copy
    itself is stamped with the time it is written.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    headers: Headers
    reason: str
    attempts: int
    on_acked: Callable[[DeadLetter], None]
    failed_writes: int = 0
    destination: str | None = None  # where it goes, when not the DLQ of ``topic`` (a retry topic, say)

    @property
    def dlq_topic(self) -> str:
        return self.destination or dlq_topic_for(self.topic)


def describe_failure(
    letter_headers: Headers,
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
    group: str,
    reason: str,
    error: BaseException,
    attempts: int,
    policy: DlqPolicy,
    now: float,
    redact: Callable[[str], str] = str,
) -> Headers:
    """The record's own headers followed by the ``dlq.*`` headers that explain the failure.

    ``redact`` sees the exception message and the stack trace before they are cut to the policy's sizes.
    """
    kind = type(error)
    trace = redact(format_trace(error))
    dlq = {
        DLQ_ORIGINAL_TOPIC: topic,
        DLQ_ORIGINAL_PARTITION: str(partition),
        DLQ_ORIGINAL_OFFSET: str(offset),
        DLQ_ORIGINAL_TIMESTAMP: "" if timestamp_ms is None else str(timestamp_ms),
        DLQ_CONSUMER_GROUP: group,
        DLQ_REASON: reason,
        DLQ_PATH: str(getattr(error, "path", "")),
        DLQ_EXCEPTION_TYPE: f"{kind.__module__}.{kind.__qualname__}",
        DLQ_EXCEPTION_MESSAGE: redact(str(error))[: policy.max_message_chars],
        DLQ_EXCEPTION_STACKTRACE: trace[-policy.max_stacktrace_chars :],
        DLQ_ATTEMPTS: str(attempts),
        DLQ_FAILED_AT: datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    kept = [(k, v) for k, v in letter_headers if k not in dlq]
    return kept + [(k, v.encode("utf-8", "replace")) for k, v in dlq.items()]


class DeadLetterPublisher:
    """Sends :class:`DeadLetter` records and re-sends failed ones; all callbacks run on the caller's thread."""

    def __init__(
        self,
        producer: Producer,
        policy: DlqPolicy,
        clock: Clock,
        on_write_failed: Callable[[DeadLetter, str], None],
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self._producer = producer
        self._policy = policy
        self._clock = clock
        self._on_write_failed = on_write_failed
        self._on_fatal = on_fatal
        self.fatal: str | None = None
        self._resends: list[tuple[float, int, DeadLetter]] = []
        self._sequence = 0
        self.pending = 0

    def send(self, letter: DeadLetter) -> None:
        self.pending += 1
        self._produce(letter)

    def _produce(self, letter: DeadLetter) -> None:
        def on_delivery(err: Any, _msg: Any) -> None:
            self._delivered(letter, err)

        try:
            self._producer.produce(
                letter.dlq_topic,
                value=letter.value,
                key=letter.key,
                headers=letter.headers,
                # Stamped now, not with the source record's timestamp (kept in dlq.original.timestamp): retention
                # must count from when the record was dead-lettered, or a backfilled record weeks old would be
                # acknowledged here, its source offset committed, and the copy deleted within minutes.
                timestamp=int(self._clock.time() * 1000),
                on_delivery=on_delivery,
            )
        except (BufferError, Exception) as exc:  # noqa: BLE001 - any refusal is a failed write, sent again later
            if _is_fatal(exc):
                self._serve_callbacks()  # the producer's own fatal error names the cause better than produce()
            self._delivered(letter, exc)

    def _delivered(self, letter: DeadLetter, err: Any) -> None:
        if err is None:
            self.pending -= 1
            letter.on_acked(letter)
            return
        if _is_fatal(err):
            self._failed_for_good(f"the dead-letter producer failed for good: {err}")
        letter.failed_writes += 1
        self._on_write_failed(letter, str(err))
        due = self._clock.monotonic() + self._policy.resend_backoff.backoff(min(letter.failed_writes, 30))
        self._sequence += 1
        heapq.heappush(self._resends, (due, self._sequence, letter))

    def poll(self) -> None:
        """Serve delivery callbacks and re-send the failed writes that are due. Never blocks."""
        if not self._serve_callbacks():
            return
        now = self._clock.monotonic()
        while self._resends and self._resends[0][0] <= now:
            _, _, letter = heapq.heappop(self._resends)
            self._produce(letter)

    def _serve_callbacks(self) -> bool:
        """``poll(0)``; False when it raised the producer's fatal error (remembered, see :meth:`_failed_for_good`)."""
        try:
            self._producer.poll(0)
        except Exception as exc:
            if not _is_fatal(exc):
                raise
            self._failed_for_good(f"the dead-letter producer failed for good: {exc}")
            return False
        return True

    def _failed_for_good(self, text: str) -> None:
        """A fatal error of the producer (an idempotent one refused its producer id, fenced, ...): once."""
        if self.fatal is None:
            self.fatal = text
            if self._on_fatal is not None:
                self._on_fatal(text)

    def next_resend_in(self, now: float) -> float | None:
        return max(0.0, self._resends[0][0] - now) if self._resends else None

    def drain(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for every pending write (re-sending failures); returns how many are left.

        A producer that failed for good acknowledges nothing more: nothing is waited for."""
        deadline = self._clock.monotonic() + timeout_s
        while self.pending and self.fatal is None and (remaining := deadline - self._clock.monotonic()) > 0:
            self._producer.flush(min(remaining, 0.2))
            self.poll()
        return self.pending


def _is_fatal(err: object) -> bool:
    """True for a librdkafka error (or the exception carrying one) that the client can never recover from."""
    error = err.args[0] if isinstance(err, Exception) and err.args else err
    fatal, name = getattr(error, "fatal", None), getattr(error, "name", None)
    return bool(callable(fatal) and fatal()) or bool(callable(name) and name() == "_FATAL")
