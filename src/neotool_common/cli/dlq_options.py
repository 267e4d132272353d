"""What every ``neotool-dlq`` subcommand does with its parsed options: the cluster and topic to open, the record
filter, and the follow-up command lines it prints."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from datetime import UTC, datetime

from neotool_common.batches.cluster import BatchCluster
from neotool_common.batches.manifest import PartitionSpan
from neotool_common.batches.reconcile import merge_spans
from neotool_common.cli.usage import EXIT_USAGE
from neotool_common.config.connection import KafkaConnection
from neotool_common.deadletter.headers import DLQ_SUFFIX
from neotool_common.dlqtool import render
from neotool_common.dlqtool.cluster import DlqCluster, TopicInfo
from neotool_common.dlqtool.filters import RecordFilter, parse_time_bound
from neotool_common.dlqtool.records import DlqRecord

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_NOT_REPLAYED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROG",
    "command_line",
    "invoked_as",
    "open_topic",
    "record_filter_of",
    "show_args",
    "show_command",
]

PROG = "neotool-dlq"
EXIT_OK, EXIT_NOT_REPLAYED, EXIT_INTERRUPTED = 0, 1, 130


def open_topic(args: argparse.Namespace) -> tuple[DlqCluster, TopicInfo]:
    env = dict(os.environ)
    if args.brokers:
        env["KAFKA_BROKERS"] = args.brokers
    cluster = DlqCluster(KafkaConnection.from_env(env), timeout_s=args.timeout, verbose=args.verbose)
    return cluster, cluster.topic(args.topic)


def record_filter_of(args: argparse.Namespace) -> RecordFilter:
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
        batch_ids=frozenset(args.batch_id or ()),
        batch_spans=_batch_spans(args) if args.batch_id else (),
    )


def _batch_spans(args: argparse.Namespace) -> tuple[tuple[str, PartitionSpan], ...]:
    """Where the batches' records are, from the manifests of the DLQ's source topic (none: envelope ids only)."""
    source = args.topic.removesuffix(DLQ_SUFFIX)
    env = dict(os.environ)
    if args.brokers:
        env["KAFKA_BROKERS"] = args.brokers
    cluster = BatchCluster(KafkaConnection.from_env(env), timeout_s=args.timeout)
    manifests = cluster.manifests(source)
    return tuple(
        (source, span)
        for batch_id in args.batch_id
        for part in manifests.get(batch_id, [])
        for span in merge_spans([part])
    )


def command_line(args: argparse.Namespace, *parts: str) -> str:
    """A follow-up command, ready to paste: ``neotool-dlq`` as it was called when it is not on ``PATH``."""
    brokers = ("--brokers", args.brokers) if args.brokers else ()
    return render.command_line(invoked_as(), *parts, *brokers)


def invoked_as() -> str:
    """``neotool-dlq``, or the path it was run by (``.venv/bin/neotool-dlq``) when ``PATH`` does not find that one."""
    called = sys.argv[0] if sys.argv else ""
    if os.path.basename(called) != PROG or os.sep not in called:
        return PROG
    found = shutil.which(PROG)
    if found is not None and os.path.realpath(found) == os.path.realpath(called):
        return PROG
    return called


def show_args(record: DlqRecord) -> tuple[str, ...]:
    return ("--partition", str(record.partition), "--offset", str(record.offset))


def show_command(args: argparse.Namespace, record: DlqRecord) -> str:
    return command_line(args, "show", record.topic, *show_args(record))
