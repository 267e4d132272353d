"""The read-only ``neotool-dlq`` subcommands: ``list``, ``show`` and ``stats`` of a dead-letter topic."""

from __future__ import annotations

import argparse
import json

from neotool_common.cli.dlq_options import EXIT_OK, command_line, open_topic, record_filter_of, show_args
from neotool_common.dlqtool import render
from neotool_common.dlqtool.filters import RecordFilter
from neotool_common.dlqtool.inspect import fetch_record, scan

__all__ = ["cmd_list", "cmd_show", "cmd_stats"]


def cmd_list(args: argparse.Namespace) -> int:
    record_filter = record_filter_of(args)
    cluster, dlq = open_topic(args)
    result = scan(cluster, dlq, record_filter, args.limit)
    if args.json:
        for record in result.shown:
            print(json.dumps(record.as_row(), ensure_ascii=False))
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
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    cluster, dlq = open_topic(args)
    record = fetch_record(cluster, dlq, args.partition, args.offset)
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
    if args.json:
        print(json.dumps({"topic": dlq.name, **result.stats.as_json()}, ensure_ascii=False))
        return EXIT_OK
    print(f"{dlq.name}: {_summary(result.total, result.matched, result.stats.total, record_filter, 'counted')}")
    print("\n".join(render.render_stats(result.stats)))
    print()
    print(f"List them: {command_line(args, 'list', dlq.name, *record_filter.to_args())}")
    return EXIT_OK


def _summary(total: int, matched: int, used: int, record_filter: RecordFilter, verb: str) -> str:
    if total == 0:
        return "empty."
    what = f"{total} record(s)" if record_filter.is_empty else f"{matched} of {total} record(s) match"
    return what + (f" ({used} {verb}, --limit)" if used < matched else "") + "."
