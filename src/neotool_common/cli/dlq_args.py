"""Command-line arguments of ``neotool-dlq``: one parser, options shared through parent parsers."""

from __future__ import annotations

import argparse

from neotool_common.cli.usage import EXIT_USAGE, UsageParser
from neotool_common.deadletter.headers import DlqReason
from neotool_common.dlqtool.replay import ReplayTuning

__all__ = ["EXIT_USAGE", "build_parser"]

REPLAY_SCOPE = (
    "Who processes a replayed record: by default only the consumer group that dead-lettered it (its "
    "dlq.consumer.group header, copied to dlq.replay.group), through that group's first retry topic when it has "
    "retry tiers; runners of other groups reading the same topic commit "
    "past the copy without processing it and count it in neotool_consumer_records_skipped_total. --to TOPIC changes "
    "the topic, not that scope. --all-groups sends the copies without a scope: every group reading the topic "
    "processes them again, as if they were new records. A record naming no group reaches every group. --dry-run "
    "prints the target and the group(s) of each record."
)


def build_parser(prog: str) -> argparse.ArgumentParser:
    """The ``neotool-dlq`` parser; usage errors exit 2 with one line."""
    common = UsageParser(add_help=False, allow_abbrev=False)
    common.add_argument("--brokers", help="host:port[,...]; default $KAFKA_BROKERS (security from KAFKA_* vars)")
    common.add_argument("--timeout", type=_positive_float, default=15.0, help="seconds to wait for the cluster")
    common.add_argument("-v", "--verbose", action="store_true", help="show librdkafka's own log lines")
    filters = _filter_options()
    parser = UsageParser(
        prog=prog, description="Inspect, explain and safely replay dead-lettered records.", allow_abbrev=False
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=UsageParser)
    for name, help_text, parents in (
        ("list", "one row per record", [common, filters]),
        ("show", "one record in full: headers, stack trace, payload", [common]),
        ("stats", "counts by reason, exception type, original topic; failure time span", [common, filters]),
        ("replay", "send records back to their original topic (or --to), for the group that failed", [common, filters]),
    ):
        command = commands.add_parser(name, help=help_text, description=help_text, parents=parents, allow_abbrev=False)
        command.add_argument("topic", metavar="DLQ_TOPIC")
        _add_command_options(name, command)
    return parser


def _filter_options() -> UsageParser:
    filters = UsageParser(add_help=False, allow_abbrev=False)
    group = filters.add_argument_group("filters (all must match)")
    reasons = ", ".join(reason.value for reason in DlqReason)
    group.add_argument("--reason", action="append", metavar="REASON", help=f"repeatable; one of {reasons}")
    group.add_argument("--exception-type", action="append", metavar="TYPE", help="qualified or short class name")
    group.add_argument("--record-id", action="append", metavar="ID", help="repeatable")
    group.add_argument(
        "--batch-id", action="append", metavar="ID", help="repeatable; records of the batch (by its manifest)"
    )
    group.add_argument("--since", metavar="WHEN", help="failed at or after: 30m, 2h, 1d, or ISO 8601 (UTC)")
    group.add_argument("--until", metavar="WHEN", help="failed at or before: same forms as --since")
    group.add_argument("--partition", action="append", type=_non_negative_int, metavar="P", help="repeatable")
    group.add_argument("--offset-from", type=_non_negative_int, metavar="N", help="DLQ offset, inclusive")
    group.add_argument("--offset-to", type=_non_negative_int, metavar="N", help="DLQ offset, inclusive")
    group.add_argument("--limit", type=_positive_int, metavar="N", help="at most N matching records")
    return filters


def _add_command_options(name: str, command: argparse.ArgumentParser) -> None:
    if name in ("list", "stats"):
        command.add_argument("--json", action="store_true", help="machine-readable output")
    if name == "show":
        command.add_argument("--offset", type=_non_negative_int, required=True, metavar="N")
        command.add_argument(
            "--partition", type=_non_negative_int, metavar="P", help="needed when several partitions hold --offset"
        )
    if name == "replay":
        command.epilog = REPLAY_SCOPE
        command.add_argument(
            "--to", metavar="TOPIC", help="send everything here instead of the original topic (same group scope)"
        )
        command.add_argument(
            "--all-groups",
            action="store_true",
            help="let every consumer group reading the topic process the copies, not only the group that failed",
        )
        command.add_argument("--dry-run", action="store_true", help="print what would happen; produce nothing")
        command.add_argument("--group", help="progress group (default neotool-dlq-replay.<dlq>[.f<filter hash>])")
        command.add_argument("--from-beginning", action="store_true", help="re-scan records replayed before")
        command.add_argument("--max-replays", type=_positive_int, default=3, metavar="N", help="loop guard (3)")
        command.add_argument("--no-park", dest="park", action="store_false", help="report looping records instead")
        command.add_argument("--rate", type=_positive_float, metavar="N", help="at most N records per second")
        command.add_argument(
            "--max-in-flight",
            type=_positive_int,
            default=ReplayTuning.max_in_flight,
            metavar="N",
            help="records sent between progress commits: the most a crash can send twice (500)",
        )


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value
