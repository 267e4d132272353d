"""describe_failure: the headers a dead-lettered record carries, bounded, with the record's own headers kept."""

from __future__ import annotations

import linecache
from datetime import UTC, datetime

import pytest

from neotool_common.deadletter.headers import DLQ_ERROR_HEADERS, DLQ_REPLAY_COUNT
from neotool_common.deadletter.publisher import DlqPolicy, describe_failure
from neotool_common.deadletter.trace import format_trace
from neotool_common.errors import PoisonMessageError, SchemaValidationError

NOW = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC).timestamp()
OWN_HEADERS: list[tuple[str, bytes | None]] = [
    ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ("empty", None),
    ("binary", b"\xff\x00\xfe"),
    ("traceparent", b"a second value under the same name"),
]


def raised(error: BaseException) -> BaseException:
    """``error`` with a real traceback, as the runner has it when process() raised."""

    def deep(level: int) -> None:
        if level == 0:
            raise error
        deep(level - 1)

    try:
        deep(30)
    except BaseException as caught:  # noqa: BLE001 - returned to the test
        return caught
    raise AssertionError("unreachable")


def describe(
    error: BaseException,
    headers: list[tuple[str, bytes | None]] | None = None,
    policy: DlqPolicy | None = None,
    timestamp_ms: int | None = 1_714_566_000_000,
) -> list[tuple[str, bytes | None]]:
    return describe_failure(
        OWN_HEADERS if headers is None else headers,
        topic="bank.v1",
        partition=2,
        offset=1234,
        timestamp_ms=timestamp_ms,
        group="enrich",
        reason="poison",
        error=error,
        attempts=1,
        policy=policy or DlqPolicy(),
        now=NOW,
    )


def text_of(headers: list[tuple[str, bytes | None]]) -> dict[str, str]:
    return {name: (value or b"").decode() for name, value in headers if name.startswith("dlq.")}


def test_every_dlq_header_is_present_with_its_value() -> None:
    headers = text_of(describe(raised(PoisonMessageError("checksum fails", "$.payload.routing_number"))))
    assert set(headers) == DLQ_ERROR_HEADERS
    stacktrace = headers.pop("dlq.exception.stacktrace")
    assert headers == {
        "dlq.original.topic": "bank.v1",
        "dlq.original.partition": "2",
        "dlq.original.offset": "1234",
        "dlq.original.timestamp": "1714566000000",
        "dlq.consumer.group": "enrich",
        "dlq.reason": "poison",
        "dlq.path": "$.payload.routing_number",
        "dlq.exception.type": "neotool_common.errors.PoisonMessageError",
        "dlq.exception.message": "checksum fails",
        "dlq.attempts": "1",
        "dlq.failed_at": "2024-05-01T12:30:15.123Z",
    }
    assert stacktrace.startswith("Traceback (most recent call last):")
    assert stacktrace.rstrip().endswith("neotool_common.errors.PoisonMessageError: checksum fails")


def test_the_records_own_headers_come_first_untouched() -> None:
    headers = describe(raised(ValueError("boom")))
    assert headers[: len(OWN_HEADERS)] == OWN_HEADERS
    assert all(name.startswith("dlq.") for name, _ in headers[len(OWN_HEADERS) :])


def test_headers_of_an_earlier_failure_are_replaced_and_the_replay_count_kept() -> None:
    earlier: list[tuple[str, bytes | None]] = [
        ("dlq.reason", b"retries_exhausted"),
        ("dlq.attempts", b"5"),
        (DLQ_REPLAY_COUNT, b"2"),
        ("tenant", b"acme"),
    ]
    headers = describe(raised(SchemaValidationError("bad", "$.payload.bic")), headers=earlier)
    names = [name for name, _ in headers]
    assert names.count("dlq.reason") == names.count("dlq.attempts") == 1
    assert (DLQ_REPLAY_COUNT, b"2") in headers
    assert ("tenant", b"acme") in headers
    assert text_of(headers)["dlq.reason"] == "poison"
    assert text_of(headers)["dlq.path"] == "$.payload.bic"


def test_the_stack_trace_and_the_message_are_bounded_keeping_the_end_of_the_trace() -> None:
    policy = DlqPolicy(max_stacktrace_chars=600, max_message_chars=50)
    headers = text_of(describe(raised(RuntimeError("x" * 10_000 + " the end")), policy=policy))
    assert len(headers["dlq.exception.message"]) == 50
    assert headers["dlq.exception.message"] == "x" * 50
    stacktrace = headers["dlq.exception.stacktrace"]
    assert len(stacktrace) == 600
    assert stacktrace.rstrip().endswith("the end"), "the innermost frames and the error are what an operator needs"


def test_the_default_bounds_keep_a_dlq_record_small() -> None:
    headers = describe(raised(RuntimeError("y" * 100_000)))
    sizes = {name: len(value or b"") for name, value in headers}
    assert sizes["dlq.exception.stacktrace"] <= 8_000
    assert sizes["dlq.exception.message"] <= 2_000


def test_exceptions_without_a_path_or_a_traceback_still_describe_themselves() -> None:
    headers = text_of(describe(ConnectionError("refused"), timestamp_ms=None))
    assert headers["dlq.path"] == ""
    assert headers["dlq.original.timestamp"] == ""
    assert headers["dlq.exception.type"] == "builtins.ConnectionError"
    assert headers["dlq.exception.stacktrace"].strip() == "ConnectionError: refused"


def test_text_that_is_not_valid_utf8_is_replaced_not_fatal() -> None:
    headers = describe(raised(ValueError("bad \udcff byte")))
    message = dict(headers)["dlq.exception.message"]
    assert message == b"bad ? byte"


def test_a_dead_letters_trace_names_its_frames_and_lines_without_checking_files_on_disk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_stat(*_: object) -> None:
        raise AssertionError("linecache.checkcache: a stat per source file for every dead letter")

    def fails() -> None:
        raise SchemaValidationError("$.payload must be object", "$.payload")

    try:
        try:
            fails()
        except SchemaValidationError as exc:
            raise PoisonMessageError("wrapped") from exc
    except PoisonMessageError as error:
        monkeypatch.setattr(linecache, "checkcache", no_stat)
        trace = format_trace(error)
    assert trace.startswith("Traceback (most recent call last):\n")
    assert f'File "{__file__}"' in trace
    assert "in fails\n" in trace
    assert '    raise SchemaValidationError("$.payload must be object", "$.payload")\n' in trace
    assert "The above exception was the cause of this one:" in trace
    assert trace.endswith("neotool_common.errors.PoisonMessageError: wrapped\n")
