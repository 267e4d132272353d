"""The read-only ``neotool-dlq`` subcommands: ``list``, ``show`` and ``stats`` of a dead-letter topic."""

from __future__ import annotations

import argparse
import json
import sys

from neotool_common.cli.dlq_options import EXIT_OK, command_line, open_topic, record_filter_of, show_args
from neotool_common.dlqtool import render
from neotool_common.dlqtool.cluster import TopicInfo
from neotool_common.dlqtool.decisions import GROUP_PREFIX
from neotool_common.dlqtool.filters import RecordFilter
from neotool_common.dlqtool.inspect import Scan, fetch_record, has_dlq_headers, scan
from neotool_common.dlqtool.progress import GroupProgress, replay_progress

__all__ = ["cmd_list", "cmd_show", "cmd_stats"]


def cmd_list(args: argparse.Namespace) -> int:
    record_filter = record_filter_of(args)
    cluster, dlq = open_topic(args)
    result = scan(cluster, dlq, record_filter, args.limit)
    _note_if_not_a_dlq(dlq, result)
    progress = replay_progress(cluster, dlq, result.snapshot)
    if args.json:
        for record in result.shown:
            replayed_by = [group.group for group in progress if group.went_past(record)]
            print(json.dumps({**record.as_row(), "replayed_by": replayed_by}, ensure_ascii=False))
        return EXIT_OK
    if result.shown:
        print("\n".join(render.render_table(result.shown)))
        print()
    print(f"{dlq.name}: {_summary(result.total, result.matched, len(result.shown), record_filter, 'shown')}")
    if result.shown:
        first = result.shown[0]
        print(f"  inspect one:  {command_line(args, 'show', dlq.name, *show_args(first))}")
        replay = command_line(args, "replay", dlq.name, *record_filter.to_args(), "--dry-run")
        print(f"  replay them:  {replay}   (then again without --dry-run)")
    if result.total:
        print(_replays(dlq, result, progress))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    cluster, dlq = open_topic(args)
    record = fetch_record(cluster, dlq, args.partition, args.offset)
    if not has_dlq_headers(record):
        print(f"note: {record.location} carries no dlq.* headers: it is not a dead-letter copy", file=sys.stderr)
    print("\n".join(render.render_show(record)))
    print()
    where = (str(record.partition), str(record.offset))
    single = ("--partition", where[0], "--offset-from", where[1], "--offset-to", where[1])
    print(f"Replay just this record: {command_line(args, 'replay', dlq.name, *single, '--dry-run')}")
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    record_filter = record_filter_of(args)
    cluster, dlq = open_topic(args)
    result = scan(cluster, dlq, record_filter, args.limit, keep=False)
    _note_if_not_a_dlq(dlq, result)
    progress = replay_progress(cluster, dlq, result.snapshot)
    if args.json:
        groups = {group.group: group.passed for group in progress}
        print(json.dumps({"topic": dlq.name, **result.stats.as_json(), "replay_groups": groups}, ensure_ascii=False))
        return EXIT_OK
    print(f"{dlq.name}: {_summary(result.total, result.matched, result.stats.total, record_filter, 'counted')}")
    if result.total:
        print(_replays(dlq, result, progress))
    print("\n".join(render.render_stats(result.stats)))
    print()
    print(f"List them: {command_line(args, 'list', dlq.name, *record_filter.to_args())}")
    return EXIT_OK


def _summary(total: int, matched: int, used: int, record_filter: RecordFilter, verb: str) -> str:
    if total == 0:
        return "empty."
    what = f"{total} record(s)" if record_filter.is_empty else f"{matched} of {total} record(s) match"
    return what + (f" ({used} {verb}, --limit)" if used < matched else "") + "."


def _replays(dlq: TopicInfo, result: Scan, progress: list[GroupProgress]) -> str:
    """What the replay groups already went past: the DLQ records themselves never change."""
    if not progress:
        return f"replays: none yet (no {GROUP_PREFIX}{dlq.name} group has committed)"
    parts = [f"{group.group} went past {group.passed} of {result.total}" for group in progress]
    how = "replayed, parked, reported, or skipped by a filtered replay's filter"
    return "replays: " + "; ".join(parts) + f" record(s) ({how})"


def _note_if_not_a_dlq(dlq: TopicInfo, result: Scan) -> None:
    if not result.looks_like_a_dlq:
        print(
            f"note: none of the {result.read} record(s) read from {dlq.name} carries dlq.* headers: "
            "it does not look like a dead-letter topic written by a neotool-common runner",
            file=sys.stderr,
        )
