"""Text for people: the ``list`` table, one record in full (``show``), ``stats``, and copy-paste commands.

Everything printed from a record is untrusted: control characters are escaped so a hostile header or
value cannot move the cursor or recolour the terminal, and bytes that are not UTF-8 are shown as hex.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import orjson

from neotool_common.dlqtool.decisions import Action, Decision, ReplayPolicy
from neotool_common.dlqtool.records import DlqRecord, parse_timestamp
from neotool_common.dlqtool.replay import ReplayReport
from neotool_common.dlqtool.stats import DlqStats

__all__ = [
    "command_line",
    "format_time",
    "render_audiences",
    "render_decision",
    "render_replay_report",
    "render_show",
    "render_stats",
    "render_table",
    "safe",
    "shorten",
    "value_preview",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_HEX_PREVIEW_BYTES = 256
EXCEPTION_WIDTH = 70


def safe(text: str, keep_layout: bool = False) -> str:
    """``text`` with control characters escaped (``keep_layout`` keeps newlines and tabs)."""
    pattern = _CONTROL_BUT_LAYOUT if keep_layout else _CONTROL
    return pattern.sub(lambda match: repr(match.group())[1:-1], text)


def shorten(text: str, width: int) -> str:
    """One safe line of at most ``width`` characters, ``…`` marking a cut."""
    line = safe(" ".join(text.split()))
    return line if len(line) <= width else line[: width - 1] + "…"


def format_time(moment: datetime | str | None) -> str:
    """UTC to the second, ``2024-05-01T03:12:09Z``; unparseable text is shown as it is; ``-`` when absent."""
    parsed = parse_timestamp(moment) if isinstance(moment, str) else moment
    if parsed is None:
        return safe(moment) if isinstance(moment, str) and moment else "-"
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def command_line(*parts: str) -> str:
    """A shell command the user can paste as it is."""
    return shlex.join(parts)


def render_table(records: Sequence[DlqRecord]) -> list[str]:
    """The ``list`` table: one aligned row per record, exception last and shortened."""
    header = ["PARTITION", "OFFSET", "FAILED_AT", "REASON", "RECORD_ID", "ORIGINAL", "TIERS", "REPLAYS", "EXCEPTION"]
    rows = [header, *(_row(record) for record in records)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    return [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]


def _row(record: DlqRecord) -> list[str]:
    original = "-"
    if record.original_topic:
        original = f"{record.original_topic}[{_or_dash(record.original_partition)}]@{_or_dash(record.original_offset)}"
    exception = f"{(record.exception_type or '-').rpartition('.')[2]}: {record.exception_message or ''}"
    return [
        str(record.partition),
        str(record.offset),
        format_time(record.failed_at),
        safe(record.reason or "-"),
        shorten(record.record_id, 40) or "-",
        shorten(original, 60),
        _tiers(record),
        str(record.replay_count),
        shorten(exception.rstrip(": "), EXCEPTION_WIDTH),
    ]


def render_show(record: DlqRecord) -> list[str]:
    """One record in full: where it is, the failure, every header, the stack trace, the value."""
    lines = [f"Record {safe(record.location)}"]
    lines += _fields(
        ("record_id", record.record_id or "-"),
        ("key", _bytes_summary(record.key)),
        ("timestamp", _epoch_ms(record.timestamp_ms)),
        ("replayed", f"{record.replay_count} time(s) before"),
    )
    lines += ["", "Failure"]
    lines += _fields(
        ("reason", record.reason or "-"),
        ("exception", record.exception_type or "-"),
        ("message", record.exception_message or "-"),
        ("path", record.path or "-"),
        ("attempts", _or_dash(record.attempts)),
        ("failed_at", format_time(record.failed_at)),
        ("consumer group", record.consumer_group or "-"),
        ("original", _original(record)),
    )
    lines += _history(record)
    lines += ["", f"Headers ({len(record.headers)}, in order)"]
    lines += [f"  {safe(name)} = {_header_value(value)}" for name, value in record.headers] or ["  (none)"]
    lines += ["", "Stack trace"]
    lines += ["  " + line for line in safe(record.stacktrace or "(none)", keep_layout=True).splitlines()]
    lines += ["", *value_preview(record.value)]
    return lines


def _tiers(record: DlqRecord) -> str:
    """How many retry tiers the record went through before the DLQ ("-": the group has none)."""
    history = record.retry_history
    return str(max(int(entry.get("tier", 0)) for entry in history)) if history else "-"


def _history(record: DlqRecord) -> list[str]:
    """Every failure the record had on its way through the retry tiers, oldest first."""
    history = record.retry_history
    if not history:
        return []
    lines = ["", "Attempt history (tier 0 is the source topic; the last failure sent it here)"]
    for entry in history:
        if "omitted" in entry:
            lines.append(f"  … {entry['omitted']} failures omitted (the header keeps the first and the latest)")
            continue
        failed = datetime.fromtimestamp(int(entry.get("failed_at", 0)) / 1000, UTC)
        kind = str(entry.get("type", "-")).rpartition(".")[2]
        lines.append(
            f"  tier {entry.get('tier', '?')}  {format_time(failed)}  {entry.get('attempts', '?')} attempt(s)  "
            f"{safe(kind)}: {shorten(safe(str(entry.get('message', ''))), 80)}"
        )
    return lines


def render_stats(stats: DlqStats) -> list[str]:
    """Failure time span, then counts largest first, each with its share of ``stats.total``."""
    if not stats.total:
        return []
    lines = [
        f"failed between {format_time(stats.oldest_failure)} and {format_time(stats.newest_failure)}",
        f"replayed at least once before: {stats.replayed_before}",
    ]
    for title, counts in (
        ("By reason", stats.by_reason),
        ("By exception type", stats.by_exception_type),
        ("By original topic", stats.by_original_topic),
        ("By path", stats.by_path),
    ):
        lines += ["", title]
        lines += _counts(counts.most_common(), stats.total)
    return lines


def value_preview(value: bytes | None) -> list[str]:
    """The value, pretty JSON when it parses, text when it is UTF-8, else a hex dump of its first bytes."""
    if value is None:
        return ["Value: null (a tombstone)"]
    try:
        pretty = orjson.dumps(orjson.loads(value), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        pass
    else:
        return [f"Value (JSON, {len(value)} bytes)", *("  " + line for line in safe(pretty, True).splitlines())]
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return [f"Value (not UTF-8, {len(value)} bytes; hex of the first {_HEX_PREVIEW_BYTES})", *_hex_dump(value)]
    return [f"Value (text, not JSON, {len(value)} bytes)", *("  " + line for line in safe(text, True).splitlines())]


def _hex_dump(value: bytes) -> list[str]:
    head = value[:_HEX_PREVIEW_BYTES]
    lines = []
    for start in range(0, len(head), 16):
        chunk = head[start : start + 16]
        printable = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"  {start:08x}  {chunk.hex(' '):<47}  {printable}")
    if len(value) > len(head):
        lines.append(f"  … {len(value) - len(head)} more bytes")
    return lines


def _fields(*pairs: tuple[str, str]) -> list[str]:
    width = max(len(name) for name, _ in pairs)
    return [f"  {name.ljust(width)}  {safe(value)}" for name, value in pairs]


def _counts(counts: Iterable[tuple[str, int]], total: int) -> list[str]:
    pairs = list(counts)
    width = max((len(safe(name)) for name, _ in pairs), default=0)
    return [f"  {safe(name).ljust(width)}  {count:>7}  {100 * count / total:5.1f}%" for name, count in pairs]


def _original(record: DlqRecord) -> str:
    if not record.original_topic:
        return "- (no dlq.original.topic header)"
    where = f"{record.original_topic}[{_or_dash(record.original_partition)}]@{_or_dash(record.original_offset)}"
    return f"{where}, produced {_epoch_ms(record.original_timestamp_ms)}"


def _header_value(value: bytes | None) -> str:
    if value is None:
        return "(null)"
    try:
        return shorten(value.decode("utf-8"), 200)
    except UnicodeDecodeError:
        return f"(not UTF-8, {len(value)} bytes) {value[:32].hex(' ')}"


def _bytes_summary(value: bytes | None) -> str:
    if value is None:
        return "(null)"
    try:
        return repr(value.decode("utf-8"))
    except UnicodeDecodeError:
        return f"(not UTF-8, {len(value)} bytes) {value[:32].hex(' ')}"


def _epoch_ms(epoch_ms: int | None) -> str:
    if epoch_ms is None:
        return "-"
    try:
        return f"{format_time(datetime.fromtimestamp(epoch_ms / 1000, UTC))} ({epoch_ms} ms)"
    except (OverflowError, OSError, ValueError):
        return f"{epoch_ms} ms (out of range)"


def _or_dash(number: int | None) -> str:
    return "-" if number is None else str(number)


def render_decision(decision: Decision, max_replays: int) -> str:
    """One line of a dry run: what would happen to this record, and why."""
    record = decision.record
    who = f"{safe(record.location)}  record_id={shorten(record.record_id, 40) or '-'}"
    target = decision.target
    if decision.action is Action.REPLAY and target is not None:
        where = target.topic if target.partition is None else f"{target.topic}[{target.partition}]"
        return (
            f"would replay  {who}  -> {safe(where)}  for {safe(target.audience)}  "
            f"(replay {record.replay_count + 1} of {max_replays})"
        )
    if decision.action is Action.PARK:
        return f"would park    {who}  -> {safe(_topic(decision))}  ({decision.why})"
    return f"cannot replay {who}  {safe(decision.why)}"


def render_audiences(audiences: Counter[str]) -> str:
    """Who processes the copies, most first: ``processed by group a (2), every group reading t (1)``."""
    return "processed by " + ", ".join(f"{safe(who)} ({count})" for who, count in audiences.most_common())


def _topic(decision: Decision) -> str:
    return decision.target.topic if decision.target is not None else ""


def render_replay_report(report: ReplayReport, policy: ReplayPolicy, show: Callable[[DlqRecord], str]) -> list[str]:
    """The end of a replay: counts, then every record that did not go back, each with a command to inspect it."""
    target = policy.to_topic or "their original topics"
    lines = [f"Replayed {report.replayed} record(s) to {target}; {report.skipped} skipped by the filter."]
    if report.audiences:
        lines.append(f"The copies are {render_audiences(report.audiences)}.")
    if report.parked:
        lines.append(f"Parked {len(report.parked)} record(s) in {policy.parked_topic} (loop guard):")
        lines += _decision_lines(report.parked, show)
    if report.reported:
        lines.append(f"Could not replay {len(report.reported)} record(s):")
        lines += _decision_lines(report.reported, show)
    if report.failed:
        lines.append(f"Failed to write {len(report.failed)} record(s); the replay stopped before them:")
        lines += [f"  {safe(d.record.location)}  -> {safe(_topic(d))}: {safe(why)}" for d, why in report.failed]
    if report.commit_error:
        lines.append(f"Could not save progress: {safe(report.commit_error)}; the next run may send some again.")
    return lines


def _decision_lines(decisions: Sequence[Decision], show: Callable[[DlqRecord], str]) -> list[str]:
    return [
        f"  {safe(d.record.location)}  record_id={shorten(d.record.record_id, 40) or '-'}  {safe(d.why)}\n"
        f"      inspect: {show(d.record)}"
        for d in decisions
    ]
