"""Parsing DLQ records: every header the runner writes, and records that are not DLQ records at all."""

from __future__ import annotations

from datetime import UTC, datetime

from neotool_common.dlqtool.records import parse_record, parse_timestamp, record_id_of
from tests.dlq_support import Failure, FakeMessage, dlq_record, envelope


def test_every_dlq_header_becomes_a_field() -> None:
    failure = Failure(
        original_topic="payments.v1",
        original_partition=3,
        original_offset=1042,
        reason="retries_exhausted",
        exception_type="builtins.TimeoutError",
        exception_message="directory timed out",
        attempts=5,
        replay_count=2,
    )
    record = dlq_record("rec-7", failure, offset=11, partition=1)

    assert (record.topic, record.partition, record.offset) == ("orders.v1.dlq", 1, 11)
    assert record.location == "orders.v1.dlq[1]@11"
    assert record.record_id == "rec-7"
    assert (record.original_topic, record.original_partition, record.original_offset) == ("payments.v1", 3, 1042)
    assert record.original_timestamp_ms == 1714532340000
    assert record.consumer_group == "orders-job"
    assert record.reason == "retries_exhausted"
    assert record.path == "$.payload.amount"
    assert record.exception_type == "builtins.TimeoutError"
    assert record.exception_message == "directory timed out"
    assert record.stacktrace is not None
    assert record.stacktrace.endswith("builtins.TimeoutError")
    assert record.attempts == 5
    assert record.failed_at == "2024-05-01T03:00:00.000Z"
    assert record.failed_at_time == datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
    assert record.replay_count == 2
    assert record.problems == ()
    assert record.header("traceparent") == "00-4bf92f3577b34da6-00f067aa0ba902b7-01"


def test_as_row_has_exactly_the_documented_keys() -> None:
    row = dlq_record("rec-1", Failure(original_offset=5), offset=3).as_row()

    assert list(row) == [
        "offset",
        "partition",
        "record_id",
        "reason",
        "exception_type",
        "exception_message",
        "path",
        "original_topic",
        "original_partition",
        "original_offset",
        "failed_at",
        "attempts",
        "replay_count",
        "retry_history",
    ]
    assert row["retry_history"] == []  # a group without retry tiers
    assert row["offset"] == 3
    assert row["original_offset"] == 5
    assert row["replay_count"] == 0
    assert row["path"] == "$.payload.amount", "the failing JSON path, for decode and validation"


def test_a_record_without_dlq_headers_parses_and_says_why_it_cannot_be_replayed() -> None:
    message = FakeMessage("orders.v1.dlq", 0, 9, _value=b"\xff\xfe\x00", _timestamp=(0, -1))

    record = parse_record(message)

    assert record.original_topic is None
    assert record.reason is None
    assert record.failed_at_time is None
    assert record.timestamp_ms is None
    assert record.record_id == ""
    assert record.replay_count == 0
    assert record.headers == ()
    assert record.problems == ("no dlq.original.topic header: not written by a neotool-common runner",)


def test_unreadable_numbers_become_none_and_a_negative_replay_count_zero() -> None:
    headers = [("dlq.original.topic", b"t"), ("dlq.attempts", b"many"), ("dlq.replay.count", b"-4")]
    record = parse_record(FakeMessage("t.dlq", 0, 0, _key=b"k", _value=b"v", _headers=headers))

    assert record.attempts is None
    assert record.replay_count == 0


def test_the_last_of_repeated_headers_wins_and_bad_utf8_is_replaced() -> None:
    headers = [("dlq.reason", b"decode"), ("dlq.reason", b"poison"), ("dlq.exception.message", b"bad \xff byte")]
    record = parse_record(FakeMessage("t.dlq", 0, 0, _key=b"k", _value=b"v", _headers=headers))

    assert record.reason == "poison"
    assert record.exception_message == "bad \ufffd byte"


def test_record_id_comes_from_the_key_then_the_envelope_then_nothing() -> None:
    assert record_id_of(b"key-1", envelope("env-1")) == "key-1"
    assert record_id_of(b"\xff\xfe", envelope("env-1")) == "env-1"
    assert record_id_of(None, envelope("env-2")) == "env-2"
    assert record_id_of(b"", envelope("env-3")) == "env-3"
    assert record_id_of(None, b'{"record_id": 5}') == ""
    assert record_id_of(None, b"[1, 2]") == ""
    assert record_id_of(None, b"\xff not json") == ""
    assert record_id_of(None, None) == ""


def test_timestamps_parse_with_a_zone_or_as_utc() -> None:
    assert parse_timestamp("2024-05-01T03:00:00.250Z") == datetime(2024, 5, 1, 3, 0, 0, 250000, tzinfo=UTC)
    assert parse_timestamp("2024-05-01T05:00:00+02:00") == datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
    assert parse_timestamp("2024-05-01") == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_timestamp("yesterday") is None
    assert parse_timestamp("") is None
    assert parse_timestamp(None) is None
