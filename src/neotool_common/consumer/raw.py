"""Reading what the Kafka client hands over: headers, and names of exceptions for logs and DLQ headers."""

from __future__ import annotations

import operator
from typing import Any, NoReturn, cast

from confluent_kafka import Message as KafkaMessage

from neotool_common.errors import DecodeError

__all__ = ["HEADERS_PATH", "dlq_copy_headers", "headers_of", "qualified", "raise_undecodable"]

HEADERS_PATH = "$headers"  # the dlq.path of a record whose header names cannot be decoded


def headers_of(msg: KafkaMessage) -> tuple[tuple[str, bytes | None], ...]:
    """The record's headers; a ``DecodeError`` at ``$headers`` when a header name is not UTF-8.

    confluent-kafka (2.16) does not raise the ``UnicodeDecodeError`` of such a name from ``headers()``: it
    returns a list holding a NULL name with the error still set, and keeps that list for later calls. Called
    directly, the error surfaces at some unrelated later call (as a ``SystemError``) once the interpreter has
    specialised the call site; ``operator.call`` checks the result here. The list itself must never be touched
    again (reading the NULL name crashes the process), which is why :func:`dlq_copy_headers` does not. The
    record handler reads them the same way, inline (one call less per record).
    """
    try:
        headers: Any = operator.call(msg.headers)
    except (UnicodeDecodeError, SystemError) as exc:
        raise_undecodable(exc)
    return tuple(headers) if headers else ()


def raise_undecodable(exc: UnicodeDecodeError | SystemError) -> NoReturn:
    """What ``operator.call(msg.headers)`` raised: a ``DecodeError`` if a header name is not UTF-8, else ``exc``."""
    cause = exc if isinstance(exc, UnicodeDecodeError) else exc.__cause__
    if not isinstance(cause, UnicodeDecodeError):
        raise exc
    raise DecodeError(f"a header name is not UTF-8: {cause}", HEADERS_PATH) from None


def dlq_copy_headers(msg: KafkaMessage, error: BaseException) -> list[tuple[str, bytes | None]]:
    """The record's headers for its DLQ copy; a record whose header names are not UTF-8 loses them there."""
    if isinstance(error, DecodeError) and error.path == HEADERS_PATH:
        return []
    return list(cast(list[tuple[str, bytes | None]], msg.headers() or ()))


def qualified(error: BaseException | None) -> str:
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}"
