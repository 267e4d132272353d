"""DLQ records as the runner writes them, for the ``neotool-dlq`` tests (unit and integration)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from neotool_common.dlqtool.records import DlqRecord, Header, parse_record
from neotool_common.testing.fakes import FakeMessage

FAILED_AT_BASE = datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
TRACE_HEAD = 'Traceback (most recent call last):\n  File "job.py", line 9'


def envelope(record_id: str, payload: object = None) -> bytes:
    return json.dumps(
        {
            "batch_id": "0190a1b2-0000-7000-8000-000000000001",
            "record_id": record_id,
            "ingested_at": "2024-05-01T02:59:00Z",
            "payload": payload if payload is not None else {"n": record_id},
        }
    ).encode()


@dataclass(frozen=True)
class Failure:
    """One dead-lettered record's failure, rendered into the ``dlq.*`` headers the runner writes."""

    original_topic: str | None = "orders.v1"
    original_partition: int = 0
    original_offset: int = 0
    reason: str = "poison"
    exception_type: str = "orders.errors.BadAmount"
    exception_message: str = "amount must be positive"
    failed_at: datetime = FAILED_AT_BASE
    attempts: int = 1
    replay_count: int | None = None
    consumer_group: str | None = "orders-job"
    replay_group: str | None = None  # kept from an earlier replay, as the runner keeps it in the DLQ copy
    own_headers: tuple[Header, ...] = field(default=(("traceparent", b"00-4bf92f3577b34da6-00f067aa0ba902b7-01"),))

    def headers(self) -> list[Header]:
        dlq = {
            "dlq.original.partition": str(self.original_partition),
            "dlq.original.offset": str(self.original_offset),
            "dlq.original.timestamp": "1714532340000",
            "dlq.reason": self.reason,
            "dlq.path": "$.payload.amount",
            "dlq.exception.type": self.exception_type,
            "dlq.exception.message": self.exception_message,
            "dlq.exception.stacktrace": f"{TRACE_HEAD}\n{self.exception_type}",
            "dlq.attempts": str(self.attempts),
            "dlq.failed_at": self.failed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        if self.original_topic is not None:
            dlq = {"dlq.original.topic": self.original_topic, **dlq}
        if self.consumer_group is not None:
            dlq["dlq.consumer.group"] = self.consumer_group
        replay = [] if self.replay_count is None else [("dlq.replay.count", str(self.replay_count).encode())]
        if self.replay_group is not None:
            replay.append(("dlq.replay.group", self.replay_group.encode()))
        return [*self.own_headers, *replay, *((k, v.encode()) for k, v in dlq.items())]


def minutes_after_base(minutes: int) -> datetime:
    return FAILED_AT_BASE + timedelta(minutes=minutes)


def dlq_record(
    record_id: str = "rec-1",
    failure: Failure | None = None,
    *,
    offset: int = 0,
    partition: int = 0,
    key: bytes | None = None,
    value: bytes | None = None,
) -> DlqRecord:
    """A parsed DLQ record at ``orders.v1.dlq[partition]@offset`` (key and value default to the runner's)."""
    failure = failure or Failure()
    message = FakeMessage(
        "orders.v1.dlq",
        partition,
        offset,
        _key=record_id.encode() if key is None else key,
        _value=envelope(record_id) if value is None else value,
        _headers=failure.headers(),
    )
    return parse_record(message)
