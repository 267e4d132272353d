"""``neotool-dlq``: inspect, explain and safely replay dead-lettered records.

::

    neotool-dlq list   DLQ_TOPIC [filters] [--json]
    neotool-dlq show   DLQ_TOPIC --offset N [--partition P]
    neotool-dlq stats  DLQ_TOPIC [filters] [--json]
    neotool-dlq replay DLQ_TOPIC [filters] [--to TOPIC] [--dry-run] [--group G] [--from-beginning]
                                 [--max-replays 3] [--no-park] [--rate N]

Exit codes: 0 done; 1 some records were not replayed (each is listed); 2 usage or configuration error
(one line on stderr, no traceback); 130 interrupted (progress saved). The work is done by
:mod:`neotool_common.dlqtool`; this module parses arguments and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

from confluent_kafka import KafkaException

from neotool_common.cli.dlq_args import build_parser
from neotool_common.config.connection import KafkaConnection
from neotool_common.dlqtool import render
from neotool_common.dlqtool.cluster import DlqCluster, TopicInfo
from neotool_common.dlqtool.decisions import GROUP_PREFIX, Action, ReplayPolicy, default_group
from neotool_common.dlqtool.filters import RecordFilter, parse_time_bound
from neotool_common.dlqtool.inspect import fetch_record, scan
from neotool_common.dlqtool.pacing import BarProgress, LineProgress, Progress
from neotool_common.dlqtool.planning import plan_replay
from neotool_common.dlqtool.records import DlqRecord
from neotool_common.dlqtool.replay import Replay, ReplayTuning
from neotool_common.errors import ConfigurationError

__all__ = ["main"]

PROG = "neotool-dlq"
EXIT_OK, EXIT_NOT_REPLAYED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# Test-only: after this many acknowledged copies the replay waits until stopped (tests SIGKILL or SIGINT it).
PAUSE_AFTER_ACKS_ENV = "NEOTOOL_DLQ_TEST_PAUSE_AFTER_ACKS"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (``--help`` and usage errors included, never raises them)."""
    try:
        args = build_parser(PROG).parse_args(argv)
    except SystemExit as stopped:
        return stopped.code if isinstance(stopped.code, int) else EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except ConfigurationError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KafkaException as error:
        print(f"{PROG}: Kafka error: {error.args[0].str()}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; progress up to the last commit is saved", file=sys.stderr)
        return EXIT_INTERRUPTED


# -- commands -----------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    record_filter = _filter(args)
    cluster, dlq = _open(args)
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
        print(f"  inspect one:  {_command(args, 'show', dlq.name, *_show_args(first))}")
        replay = _command(args, "replay", dlq.name, *record_filter.to_args(), "--dry-run")
        print(f"  replay them:  {replay}   (then again without --dry-run)")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    cluster, dlq = _open(args)
    record = fetch_record(cluster, dlq, args.partition, args.offset)
    print("\n".join(render.render_show(record)))
    print()
    where = (str(record.partition), str(record.offset))
    single = ("--partition", where[0], "--offset-from", where[1], "--offset-to", where[1])
    print(f"Replay just this record: {_command(args, 'replay', dlq.name, *single, '--dry-run')}")
    return EXIT_OK


def cmd_stats(args: argparse.Namespace) -> int:
    record_filter = _filter(args)
    cluster, dlq = _open(args)
    result = scan(cluster, dlq, record_filter, args.limit, keep=False)
    if args.json:
        print(json.dumps({"topic": dlq.name, **result.stats.as_json()}, ensure_ascii=False))
        return EXIT_OK
    print(f"{dlq.name}: {_summary(result.total, result.matched, result.stats.total, record_filter, 'counted')}")
    print("\n".join(render.render_stats(result.stats)))
    print()
    print(f"List them: {_command(args, 'list', dlq.name, *record_filter.to_args())}")
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    record_filter = _filter(args)
    policy = ReplayPolicy(
        dlq_topic=args.topic,
        to_topic=args.to,
        max_replays=args.max_replays,
        park=args.park,
        limit=args.limit,
        rate=args.rate,
    )
    cluster, dlq = _open(args)
    if policy.to_topic is not None:
        cluster.topic(policy.to_topic, setting="--to")
    group = args.group or default_group(record_filter, policy)
    _warn_about_filtered_replays(cluster, group, dlq)
    if args.dry_run:
        return _dry_run(args, cluster, dlq, record_filter, policy, group)
    print(f"Replaying {dlq.name} to {policy.to_topic or 'the original topics'}; {_progress_note(group, args)}")
    with _stop_on_signals() as stop:
        replay = Replay(
            cluster,
            dlq,
            record_filter,
            policy,
            group,
            from_beginning=args.from_beginning,
            stop=stop,
            progress=_progress(),
            say=lambda line: print(line, file=sys.stderr),
            on_ack=_test_pause_hook(stop),
            tuning=ReplayTuning(max_in_flight=args.max_in_flight),
        )
        report = replay.run()
    print("\n".join(render.render_replay_report(report, policy, lambda r: _show_command(args, r))))
    if report.interrupted:
        print(f"Interrupted: progress saved in group {group}; run the same command to continue.")
        return EXIT_INTERRUPTED
    if report.total == 0:
        print(f"Nothing to replay: group {group} is at the end of {dlq.name} (--from-beginning re-scans).")
    return EXIT_OK if report.complete else EXIT_NOT_REPLAYED


def _dry_run(
    args: argparse.Namespace,
    cluster: DlqCluster,
    dlq: TopicInfo,
    record_filter: RecordFilter,
    policy: ReplayPolicy,
    group: str,
) -> int:
    print(f"Dry run of replaying {dlq.name}: nothing is produced or committed; {_progress_note(group, args)}")
    counts = dict.fromkeys(Action, 0)
    for decision in plan_replay(cluster, dlq, record_filter, policy, group, args.from_beginning):
        counts[decision.action] += 1
        if decision.action is not Action.SKIP:
            print(render.render_decision(decision, policy.max_replays))
    print(
        f"Dry run: {counts[Action.REPLAY]} would be replayed, {counts[Action.PARK]} parked, "
        f"{counts[Action.REPORT]} cannot be replayed, {counts[Action.SKIP]} skipped by the filter."
    )
    if counts[Action.REPLAY] or counts[Action.PARK]:
        print(f"Run it: {_command(args, 'replay', *_replay_args(args, record_filter, policy))}")
    return EXIT_NOT_REPLAYED if counts[Action.PARK] or counts[Action.REPORT] else EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": cmd_list,
    "show": cmd_show,
    "stats": cmd_stats,
    "replay": cmd_replay,
}


# -- helpers ------------------------------------------------------------------------------------------


def _open(args: argparse.Namespace) -> tuple[DlqCluster, TopicInfo]:
    env = dict(os.environ)
    if args.brokers:
        env["KAFKA_BROKERS"] = args.brokers
    cluster = DlqCluster(KafkaConnection.from_env(env), timeout_s=args.timeout, verbose=args.verbose)
    return cluster, cluster.topic(args.topic)


def _warn_about_filtered_replays(cluster: DlqCluster, group: str, dlq: TopicInfo) -> None:
    """An unfiltered replay after filtered ones sends their records again: say so before it happens."""
    if group != GROUP_PREFIX + dlq.name:
        return
    earlier = cluster.groups_named(f"{group}.f")
    if earlier:
        print(
            f"note: {len(earlier)} filtered replay(s) of {dlq.name} ran before ({', '.join(earlier)}); "
            "the records they sent are sent again by this unfiltered replay",
            file=sys.stderr,
        )


def _filter(args: argparse.Namespace) -> RecordFilter:
    now = datetime.now(UTC)
    return RecordFilter(
        reasons=frozenset(args.reason or ()),
        exception_types=frozenset(args.exception_type or ()),
        record_ids=frozenset(args.record_id or ()),
        since=parse_time_bound(args.since, now, "--since") if args.since else None,
        until=parse_time_bound(args.until, now, "--until") if args.until else None,
        partitions=frozenset(args.partition or ()),
        offset_from=args.offset_from,
        offset_to=args.offset_to,
    )


def _summary(total: int, matched: int, used: int, record_filter: RecordFilter, verb: str) -> str:
    if total == 0:
        return "empty."
    what = f"{total} record(s)" if record_filter.is_empty else f"{matched} of {total} record(s) match"
    return what + (f" ({used} {verb}, --limit)" if used < matched else "") + "."


def _progress_note(group: str, args: argparse.Namespace) -> str:
    if args.from_beginning:
        return f"group {group}, from the beginning (records replayed before are sent again)"
    return f"group {group}, continuing from its committed offsets"


def _command(args: argparse.Namespace, *parts: str) -> str:
    brokers = ("--brokers", args.brokers) if args.brokers else ()
    return render.command_line(PROG, *parts, *brokers)


def _show_args(record: DlqRecord) -> tuple[str, ...]:
    return ("--partition", str(record.partition), "--offset", str(record.offset))


def _show_command(args: argparse.Namespace, record: DlqRecord) -> str:
    return _command(args, "show", record.topic, *_show_args(record))


def _replay_args(args: argparse.Namespace, record_filter: RecordFilter, policy: ReplayPolicy) -> list[str]:
    """The options of this replay, for the command that runs it for real."""
    options = [policy.dlq_topic, *record_filter.to_args()]
    options += ["--limit", str(policy.limit)] if policy.limit is not None else []
    options += ["--to", policy.to_topic] if policy.to_topic is not None else []
    options += ["--group", args.group] if args.group else []
    options += ["--from-beginning"] if args.from_beginning else []
    options += ["--max-replays", str(policy.max_replays)] if policy.max_replays != 3 else []
    options += [] if policy.park else ["--no-park"]
    options += ["--rate", f"{policy.rate:g}"] if policy.rate is not None else []
    return options


def _progress() -> Progress:
    return BarProgress(sys.stderr) if sys.stderr.isatty() else LineProgress(sys.stderr)


def _test_pause_hook(stop: threading.Event) -> Callable[[int], None] | None:
    pause_after = os.environ.get(PAUSE_AFTER_ACKS_ENV)
    if not pause_after:
        return None

    def pause(acknowledged: int) -> None:
        if acknowledged == int(pause_after):
            print(f"test hook: paused after {acknowledged} acknowledged records", file=sys.stderr, flush=True)
            while not stop.wait(0.05):
                pass

    return pause


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM set the event (the replay finishes its in-flight records); a second Ctrl+C quits."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request_stop(signum: int, frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
