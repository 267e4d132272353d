"""The ``neotool-dlq replay`` subcommand: a dry run's plan, or the replay itself with progress and signal handling."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator

from neotool_common.cli.dlq_options import (
    EXIT_INTERRUPTED,
    EXIT_NOT_REPLAYED,
    EXIT_OK,
    command_line,
    open_topic,
    record_filter_of,
    show_command,
)
from neotool_common.dlqtool import render
from neotool_common.dlqtool.cluster import DlqCluster, TopicInfo
from neotool_common.dlqtool.decisions import GROUP_PREFIX, Action, ReplayPolicy, default_group
from neotool_common.dlqtool.filters import RecordFilter
from neotool_common.dlqtool.pacing import BarProgress, LineProgress, Progress
from neotool_common.dlqtool.permissions import missing_permissions
from neotool_common.dlqtool.planning import plan_replay
from neotool_common.dlqtool.replay import Replay, ReplayReport, ReplayTuning
from neotool_common.errors import ConfigurationError

__all__ = ["PAUSE_AFTER_ACKS_ENV", "RETURNING_REASONS", "cmd_replay"]

# Failures of the record itself, not of the consumer: replayed as they are, they fail the same way.
RETURNING_REASONS = frozenset({"decode", "validation"})
COME_BACK = "decode and validation records come straight back to the DLQ unless the producer or the schema was fixed"

# Test-only: after this many acknowledged copies the replay waits until stopped (tests SIGKILL or SIGINT it).
PAUSE_AFTER_ACKS_ENV = "NEOTOOL_DLQ_TEST_PAUSE_AFTER_ACKS"


def cmd_replay(args: argparse.Namespace) -> int:
    record_filter = record_filter_of(args)
    policy = ReplayPolicy(
        dlq_topic=args.topic,
        to_topic=args.to,
        all_groups=args.all_groups,
        max_replays=args.max_replays,
        park=args.park,
        limit=args.limit,
        rate=args.rate,
    )
    cluster, dlq = open_topic(args)
    if policy.to_topic is not None:
        cluster.topic(policy.to_topic, setting="--to")
    group = args.group or default_group(record_filter, policy)
    _warn_about_filtered_replays(cluster, group, dlq)
    if args.dry_run:
        return _dry_run(args, cluster, dlq, record_filter, policy, group)
    if not record_filter.reasons:
        print(f"warning: {COME_BACK} (--reason poison --reason retries_exhausted leaves them out)", file=sys.stderr)
    missing = _missing_permissions(args, cluster, dlq, record_filter, policy, group)
    if missing:
        raise ConfigurationError("replay", f"not authorized, nothing sent; the principal needs {', '.join(missing)}")
    print(f"Replaying {dlq.name} to {policy.to_topic or 'the original topics'}; {_progress_note(group, args)}")
    print(_scope_note(policy))
    report = _run(args, cluster, dlq, record_filter, policy, group)
    print("\n".join(render.render_replay_report(report, policy, lambda r: show_command(args, r))))
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
    print(_scope_note(policy))
    counts = dict.fromkeys(Action, 0)
    returning: Counter[str] = Counter()
    audiences: Counter[str] = Counter()
    for decision in plan_replay(cluster, dlq, record_filter, policy, group, args.from_beginning):
        counts[decision.action] += 1
        if decision.action is Action.REPLAY and decision.target is not None:
            audiences[decision.target.audience] += 1
        if decision.action is Action.REPLAY and decision.record.reason in RETURNING_REASONS:
            returning[decision.record.reason or ""] += 1
        if decision.action is not Action.SKIP:
            print(render.render_decision(decision, policy.max_replays))
    print(
        f"Dry run: {counts[Action.REPLAY]} would be replayed, {counts[Action.PARK]} parked, "
        f"{counts[Action.REPORT]} cannot be replayed, {counts[Action.SKIP]} skipped by the filter."
    )
    if audiences:
        print(f"The copies would be {render.render_audiences(audiences)}.")
    if returning:
        which = ", ".join(f"{count} {reason}" for reason, count in sorted(returning.items()))
        print(f"warning: {which} record(s) would be replayed: {COME_BACK}", file=sys.stderr)
    if counts[Action.REPLAY] or counts[Action.PARK]:
        print(f"Run it: {command_line(args, 'replay', *_replay_args(args, record_filter, policy))}")
    return EXIT_NOT_REPLAYED if counts[Action.PARK] or counts[Action.REPORT] else EXIT_OK


def _missing_permissions(
    args: argparse.Namespace,
    cluster: DlqCluster,
    dlq: TopicInfo,
    record_filter: RecordFilter,
    policy: ReplayPolicy,
    group: str,
) -> list[str]:
    """The ACLs the dry-run plan needs and the principal lacks; none known when the plan cannot be made (the
    replay then meets the same trouble and reports it as before)."""
    try:
        plan = list(plan_replay(cluster, dlq, record_filter, policy, group, args.from_beginning))
    except ConfigurationError:
        return []
    return missing_permissions(cluster, dlq, group, policy.parked_topic, plan)


def _run(
    args: argparse.Namespace,
    cluster: DlqCluster,
    dlq: TopicInfo,
    record_filter: RecordFilter,
    policy: ReplayPolicy,
    group: str,
) -> ReplayReport:
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
        return replay.run()


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


def _scope_note(policy: ReplayPolicy) -> str:
    if policy.all_groups:
        return "Every consumer group reading the target processes the copies again (--all-groups)."
    return (
        "Each copy is processed only by the group that dead-lettered it (dlq.consumer.group); other groups "
        "reading the target skip it. --all-groups reaches every group."
    )


def _progress_note(group: str, args: argparse.Namespace) -> str:
    if args.from_beginning:
        return f"group {group}, from the beginning (records replayed before are sent again)"
    return f"group {group}, continuing from its committed offsets"


def _replay_args(args: argparse.Namespace, record_filter: RecordFilter, policy: ReplayPolicy) -> list[str]:
    """The options of this replay, for the command that runs it for real."""
    options = [policy.dlq_topic, *record_filter.to_args()]
    options += ["--limit", str(policy.limit)] if policy.limit is not None else []
    options += ["--to", policy.to_topic] if policy.to_topic is not None else []
    options += ["--all-groups"] if policy.all_groups else []
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
