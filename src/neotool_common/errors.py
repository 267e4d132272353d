"""Errors of neotool-common.

The tree::

    NeotoolError
    ├── ConfigurationError        a setting is missing or invalid (the CLI prints one line and exits 2)
    │   └── ConfigurationErrors   several at once: one line per setting
    ├── InvalidRecordError        a record can never be processed; dead-lettered at once, never retried
    │   ├── DecodeError           the bytes are not one strict UTF-8 JSON object         (dlq.reason=decode)
    │   ├── SchemaValidationError the object breaks the envelope or payload schema       (dlq.reason=validation)
    │   └── PoisonMessageError    raised by ``process()``: this record can never succeed (dlq.reason=poison)
    ├── DeadLetterError           a dead-letter write was not acknowledged by the broker (retried, never dropped)
    ├── CircuitOpenError          dead-lettering ran away; the runner stops instead of emptying the topic
    └── FatalClientError          the Kafka client can never recover (fenced, authorization); exit code 1

    BaseException
    └── HandlerContractError      a hook broke its contract (a plain ``def process`` returned an awaitable);
                                  no retry or dead-letter may absorb it: the runner stops with exit code 1

Any other ``Exception`` raised by ``process()`` is transient: the record is retried with backoff and
dead-lettered with ``dlq.reason=retries_exhausted`` once the attempts are used up. A ``BaseException``
that is not an ``Exception`` (KeyboardInterrupt, SystemExit, cancellation) is never dead-lettered.
"""

from __future__ import annotations

__all__ = [
    "CircuitOpenError",
    "ConfigurationError",
    "ConfigurationErrors",
    "DeadLetterError",
    "DecodeError",
    "FatalClientError",
    "HandlerContractError",
    "InvalidRecordError",
    "NeotoolError",
    "PoisonMessageError",
    "SchemaValidationError",
]


class NeotoolError(Exception):
    """Base class of every error neotool-common raises on purpose."""


class ConfigurationError(NeotoolError):
    """A setting is missing or invalid. ``str()`` is the one line shown to the user; never holds a secret."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting = setting
        self.problem = problem
        super().__init__(f"{setting}: {problem}")


class ConfigurationErrors(ConfigurationError):
    """Several settings are invalid; ``errors`` has one :class:`ConfigurationError` per setting, in order.

    ``str()`` is one line per setting; ``setting`` and ``problem`` are the first one's.
    """

    def __init__(self, errors: list[ConfigurationError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.setting, first.problem)
        self.args = ("\n".join(str(error) for error in self.errors),)

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidRecordError(NeotoolError):
    """A record that can never be processed. ``reason`` is its ``dlq.reason``; ``path`` the failing JSON path."""

    reason = "poison"

    def __init__(self, message: str, path: str = "$") -> None:
        self.path = path
        super().__init__(message)


class DecodeError(InvalidRecordError):
    """The value is not one strict UTF-8 JSON object (bad bytes, bad JSON, duplicate keys, NaN, too deep...)."""

    reason = "decode"


class SchemaValidationError(InvalidRecordError):
    """The decoded object breaks the envelope schema or the consumer's payload schema.

    ``record_id`` and ``batch_id`` are the decoded object's, when they are strings (for the log line).
    """

    reason = "validation"
    record_id: str | None = None
    batch_id: str | None = None


class PoisonMessageError(InvalidRecordError):
    """Raise from ``process()`` for a record that can never succeed: it goes to the DLQ at once, unretried."""

    reason = "poison"

    def __init__(self, message: str = "poison message", path: str = "$") -> None:
        super().__init__(message, path)


class DeadLetterError(NeotoolError):
    """Writing a record to its dead-letter topic failed; the runner keeps retrying and commits nothing past it."""


class CircuitOpenError(NeotoolError):
    """Too many records went to the DLQ in a row or in a window: a bad deploy, not bad records."""


class FatalClientError(NeotoolError):
    """The consumer or the dead-letter producer reported an error it cannot recover from; the runner exits 1."""


class HandlerContractError(BaseException):
    """A hook broke its contract; not an ``Exception``, so that nothing treats it as a transient failure."""
