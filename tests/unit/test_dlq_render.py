"""Text for people: safe for the terminal, aligned, complete where it must be, short where it may be."""

from __future__ import annotations

from neotool_common.deadletter.retry_headers import RETRY_HISTORY, bounded_history, history_entry
from neotool_common.dlqtool.decisions import Action, Decision, ReplayPolicy
from neotool_common.dlqtool.records import parse_record
from neotool_common.dlqtool.render import (
    command_line,
    format_time,
    render_decision,
    render_replay_report,
    render_show,
    render_stats,
    render_table,
    safe,
    shorten,
    value_preview,
)
from neotool_common.dlqtool.replay import ReplayReport
from neotool_common.dlqtool.stats import collect_stats
from neotool_common.dlqtool.targets import ReplayTarget
from tests.dlq_support import Failure, FakeMessage, dlq_record, minutes_after_base


def test_control_characters_are_escaped_so_records_cannot_drive_the_terminal() -> None:
    assert safe("red \x1b[31m bell \x07 nl \n") == "red \\x1b[31m bell \\x07 nl \\n"
    assert safe("line 1\n\tline 2\x1b", keep_layout=True) == "line 1\n\tline 2\\x1b"
    assert safe("c1 \x9b") == "c1 \\x9b"


def test_shorten_cuts_with_an_ellipsis_and_flattens_whitespace() -> None:
    assert shorten("a  b\n c\x1b", 10) == "a b c\\x1b"
    assert shorten("x" * 12, 10) == "x" * 9 + "…"
    assert shorten("short", 10) == "short"


def test_format_time_is_utc_to_the_second() -> None:
    assert format_time("2024-05-01T05:00:00.500+02:00") == "2024-05-01T03:00:00Z"
    assert format_time("not a time") == "not a time"
    assert format_time(None) == "-"
    assert format_time(minutes_after_base(61)) == "2024-05-01T04:01:00Z"


def test_command_line_quotes_what_the_shell_would_split() -> None:
    assert (
        command_line("neotool-dlq", "list", "t.dlq", "--record-id", "a b") == "neotool-dlq list t.dlq --record-id 'a b'"
    )


def test_table_aligns_columns_and_shortens_the_exception() -> None:
    long_message = "the directory service answered 503 " * 5
    records = [
        dlq_record("rec-1", Failure(exception_type="builtins.TimeoutError", exception_message=long_message)),
        dlq_record("record-22", Failure(original_topic="payments.v1", original_offset=1042), offset=17),
    ]

    header, first, second = render_table(records)

    assert header.split() == [
        "PARTITION",
        "OFFSET",
        "FAILED_AT",
        "REASON",
        "RECORD_ID",
        "ORIGINAL",
        "TIERS",
        "REPLAYS",
        "EXCEPTION",
    ]
    assert header.index("RECORD_ID") == first.index("rec-1") == second.index("record-22")
    assert "payments.v1[0]@1042" in second
    assert first.endswith("…")
    assert "TimeoutError: the directory service" in first
    assert len(first) - first.index("TimeoutError") == 70


def test_show_prints_every_header_the_stack_trace_and_the_pretty_payload() -> None:
    record = dlq_record("rec-1", Failure(exception_message="bad \x1b[2J amount"))

    text = "\n".join(render_show(record))

    assert text.startswith("Record orders.v1.dlq[0]@0\n")
    for name, _ in record.headers:
        assert f"  {name} = " in text
    assert "bad \\x1b[2J amount" in text
    assert "\x1b" not in text
    assert 'Stack trace\n  Traceback (most recent call last):\n    File "job.py", line 9' in text
    assert "Value (JSON, " in text
    assert '    "record_id": "rec-1",' in text


def test_show_handles_a_record_that_is_not_a_dlq_record() -> None:
    record = parse_record(
        FakeMessage("t.dlq", 0, 4, _key=b"\xff", _value=b"\x00\x01\xff", _headers=[("x", b"\xfe")], _timestamp=(0, -1))
    )

    text = "\n".join(render_show(record))

    assert "key        (not UTF-8, 1 bytes) ff" in text
    assert "original        - (no dlq.original.topic header)" in text
    assert "x = (not UTF-8, 1 bytes) fe" in text
    assert "Stack trace\n  (none)" in text


def test_value_preview_by_kind_of_bytes() -> None:
    assert value_preview(None) == ["Value: null (a tombstone)"]
    assert value_preview(b'{"a": [1]}') == ["Value (JSON, 10 bytes)", "  {", '    "a": [', "      1", "    ]", "  }"]
    assert value_preview(b"plain\ntext") == ["Value (text, not JSON, 10 bytes)", "  plain", "  text"]
    hex_lines = value_preview(bytes(range(250, 256)) + b"AB" + bytes(300))
    assert hex_lines[0] == "Value (not UTF-8, 308 bytes; hex of the first 256)"
    assert hex_lines[1] == "  00000000  fa fb fc fd fe ff 41 42 00 00 00 00 00 00 00 00  ......AB........"
    assert hex_lines[-1] == "  … 52 more bytes"


def test_stats_show_counts_largest_first_with_shares() -> None:
    stats = collect_stats(
        [
            dlq_record("a", Failure(reason="poison", failed_at=minutes_after_base(5))),
            dlq_record("b", Failure(reason="decode", replay_count=1)),
            dlq_record("c", Failure(reason="poison", failed_at=minutes_after_base(90))),
        ]
    )

    lines = render_stats(stats)

    assert lines[0] == "failed between 2024-05-01T03:00:00Z and 2024-05-01T04:30:00Z"
    assert lines[1] == "replayed at least once before: 1"
    reasons = lines[lines.index("By reason") + 1 : lines.index("By reason") + 3]
    assert [line.split() for line in reasons] == [["poison", "2", "66.7%"], ["decode", "1", "33.3%"]]
    assert stats.as_json()["by_original_topic"] == {"orders.v1": 3}
    assert stats.as_json()["by_path"] == {"$.payload.amount": 3}, "which field failed, for decode and validation"
    paths = lines[lines.index("By path") + 1]
    assert paths.split() == ["$.payload.amount", "3", "100.0%"]
    assert render_stats(collect_stats([])) == []


def test_dry_run_lines_say_what_would_happen_and_why() -> None:
    record = dlq_record("rec-1", Failure(replay_count=1), offset=4)
    policy = ReplayPolicy(dlq_topic="orders.v1.dlq")

    scoped = ReplayTarget("orders.v1", 2, "orders-job")
    replay = render_decision(Decision(Action.REPLAY, record, scoped), policy.max_replays)
    everyone = render_decision(Decision(Action.REPLAY, record, ReplayTarget("orders.v1")), 3)
    park = render_decision(Decision(Action.PARK, record, ReplayTarget(policy.parked_topic), why="looping"), 3)
    report = render_decision(Decision(Action.REPORT, record, why="no topic"), 3)

    assert replay == (
        "would replay  orders.v1.dlq[0]@4  record_id=rec-1  -> orders.v1[2]  for group orders-job  (replay 2 of 3)"
    )
    assert everyone == (
        "would replay  orders.v1.dlq[0]@4  record_id=rec-1  -> orders.v1  for every group reading orders.v1  "
        "(replay 2 of 3)"
    )
    assert park == "would park    orders.v1.dlq[0]@4  record_id=rec-1  -> orders.v1.dlq.parked  (looping)"
    assert report == "cannot replay orders.v1.dlq[0]@4  record_id=rec-1  no topic"


def test_replay_report_lists_each_record_that_did_not_go_back_with_a_command() -> None:
    parked_to = ReplayTarget("orders.v1.dlq.parked")
    parked = Decision(Action.PARK, dlq_record("p", offset=3), parked_to, why="replayed 3 time(s)")
    reported = Decision(Action.REPORT, dlq_record("r", offset=8), why="target topic 'x' does not exist")
    report = ReplayReport("g", skipped=2, parked=[parked], reported=[reported])
    for group, count in (("a", 2), (None, 1), ("b\x1b[31m", 2)):
        for _ in range(count):
            report.count_replayed(Decision(Action.REPLAY, dlq_record(), ReplayTarget("orders.v1", group=group)))
    policy = ReplayPolicy(dlq_topic="orders.v1.dlq")

    lines = render_replay_report(report, policy, lambda record: f"show {record.offset}")

    assert lines == [
        "Replayed 5 record(s) to their original topics; 2 skipped by the filter.",
        "The copies are processed by group a (2), group b\\x1b[31m (2), every group reading orders.v1 (1).",
        "Parked 1 record(s) in orders.v1.dlq.parked (loop guard):",
        "  orders.v1.dlq[0]@3  record_id=p  replayed 3 time(s)\n      inspect: show 3",
        "Could not replay 1 record(s):",
        "  orders.v1.dlq[0]@8  record_id=r  target topic 'x' does not exist\n      inspect: show 8",
    ]
    assert not report.complete
    assert ReplayReport("g", replayed=5).complete


def test_a_record_that_went_through_retry_tiers_shows_its_attempt_history_in_show_and_its_tiers_in_list() -> None:
    history = bounded_history(
        [
            history_entry(0, 5, 1_714_532_340_000, "builtins.ConnectionError", "directory down"),
            history_entry(1, 5, 1_714_532_370_000, "builtins.ConnectionError", "still down"),
            history_entry(2, 5, 1_714_532_670_000, "builtins.TimeoutError", "timed out"),
        ]
    )
    record = dlq_record("rec-1", Failure(reason="retries_exhausted", own_headers=((RETRY_HISTORY, history),)))

    text = "\n".join(render_show(record))
    header, row = render_table([record])

    assert "Attempt history" in text
    assert "tier 1  2024-05-01T02:59:30Z  5 attempt(s)  ConnectionError: still down" in text
    assert row[header.index("TIERS") :].split()[:2] == ["2", "0"]  # two tiers, no replay
    assert [entry["tier"] for entry in record.as_row()["retry_history"]] == [0, 1, 2]
