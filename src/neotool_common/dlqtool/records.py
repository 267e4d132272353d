"""A dead-lettered record as the tools see it: the raw Kafka record plus its parsed ``dlq.*`` headers.

Parsing never fails: a header that is missing or unreadable becomes ``None`` and, when it is one a replay
needs, a line in :attr:`DlqRecord.problems`. Tools decide what an unusable record means for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

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
    DLQ_REPLAY_COUNT,
)
from neotool_common.deadletter.retry_headers import RETRY_HISTORY, parse_history

__all__ = ["DlqRecord", "Header", "KafkaMessage", "parse_record", "parse_timestamp", "record_id_of"]

Header = tuple[str, bytes | None]


class KafkaMessage(Protocol):
    """The part of ``confluent_kafka.Message`` the tools read (fakes in unit tests implement just this)."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes | None]] | None: ...
    def timestamp(self) -> tuple[int, int]: ...


@dataclass(frozen=True)
class DlqRecord:
    """One record of a DLQ topic, with the failure it describes. Header-derived fields are ``None`` if absent."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    headers: tuple[Header, ...]
    record_id: str
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    original_timestamp_ms: int | None
    consumer_group: str | None
    reason: str | None
    path: str | None
    exception_type: str | None
    exception_message: str | None
    stacktrace: str | None
    attempts: int | None
    failed_at: str | None
    replay_count: int

    @property
    def failed_at_time(self) -> datetime | None:
        """``dlq.failed_at`` as an aware UTC datetime, or ``None`` when it is missing or not ISO 8601."""
        return parse_timestamp(self.failed_at)

    @property
    def problems(self) -> tuple[str, ...]:
        """Why this record cannot be replayed to its original topic (empty for a valid DLQ record)."""
        if not self.original_topic:
            return (f"no {DLQ_ORIGINAL_TOPIC} header: not written by a neotool-common runner",)
        return ()

    @property
    def location(self) -> str:
        """``topic[partition]@offset``: how every tool names one record."""
        return f"{self.topic}[{self.partition}]@{self.offset}"

    def header(self, name: str) -> str | None:
        """The last value of header ``name`` as text (invalid UTF-8 replaced), or ``None`` when absent."""
        return _header_text(self.headers, name)

    @property
    def retry_history(self) -> list[dict[str, Any]]:
        """The failures before this one, through the group's retry tiers (``retry.history``); [] without tiers."""
        return parse_history(self.header(RETRY_HISTORY))

    def as_row(self) -> dict[str, Any]:
        """The stable JSON object ``neotool-dlq list --json`` prints for this record."""
        return {
            "offset": self.offset,
            "partition": self.partition,
            "record_id": self.record_id,
            "reason": self.reason,
            "exception_type": self.exception_type,
            "exception_message": self.exception_message,
            "path": self.path,
            "original_topic": self.original_topic,
            "original_partition": self.original_partition,
            "original_offset": self.original_offset,
            "failed_at": self.failed_at,
            "attempts": self.attempts,
            "replay_count": self.replay_count,
            "retry_history": self.retry_history,
        }


def parse_record(message: KafkaMessage) -> DlqRecord:
    """Build a :class:`DlqRecord` from a consumed message that carries no error."""
    headers = tuple((name, value) for name, value in message.headers() or ())
    timestamp_type, timestamp = message.timestamp()

    def text(name: str) -> str | None:
        return _header_text(headers, name)

    def number(name: str) -> int | None:
        return _as_int(text(name))

    return DlqRecord(
        topic=message.topic() or "",
        partition=_required(message.partition()),
        offset=_required(message.offset()),
        key=message.key(),
        value=message.value(),
        timestamp_ms=timestamp if timestamp_type != 0 else None,
        headers=headers,
        record_id=record_id_of(message.key(), message.value()),
        original_topic=text(DLQ_ORIGINAL_TOPIC) or None,
        original_partition=number(DLQ_ORIGINAL_PARTITION),
        original_offset=number(DLQ_ORIGINAL_OFFSET),
        original_timestamp_ms=number(DLQ_ORIGINAL_TIMESTAMP),
        consumer_group=text(DLQ_CONSUMER_GROUP),
        reason=text(DLQ_REASON),
        path=text(DLQ_PATH),
        exception_type=text(DLQ_EXCEPTION_TYPE),
        exception_message=text(DLQ_EXCEPTION_MESSAGE),
        stacktrace=text(DLQ_EXCEPTION_STACKTRACE),
        attempts=number(DLQ_ATTEMPTS),
        failed_at=text(DLQ_FAILED_AT),
        replay_count=max(0, number(DLQ_REPLAY_COUNT) or 0),
    )


def record_id_of(key: bytes | None, value: bytes | None) -> str:
    """The record's id: the key when it is UTF-8 text, else the envelope's ``record_id``, else ``""``."""
    if key:
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if value:
        try:
            envelope = orjson.loads(value)
        except orjson.JSONDecodeError:
            return ""
        if isinstance(envelope, dict) and isinstance(envelope.get("record_id"), str):
            return str(envelope["record_id"])
    return ""


def parse_timestamp(text: str | None) -> datetime | None:
    """An ISO 8601 timestamp as an aware UTC datetime (naive means UTC); ``None`` if it does not parse."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _header_text(headers: Sequence[Header], name: str) -> str | None:
    for header_name, value in reversed(headers):
        if header_name == name:
            return None if value is None else value.decode("utf-8", errors="replace")
    return None


def _as_int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _required(number: int | None) -> int:
    if number is None:
        raise ValueError("a consumed record always has a partition and an offset")
    return number
