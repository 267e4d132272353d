"""``neotool-batch``: is batch X done, and what happened to each of its records?

::

    neotool-batch list   [--topic T] [--group G] [--json]
    neotool-batch status BATCH_ID [--topic T] [--group G] [--json] [--wait SECONDS]

The topic defaults to ``KAFKA_TOPICS`` (every one of them is searched), the group to ``KAFKA_GROUP_ID``, the
cluster to ``KAFKA_*`` (as ``neotool-dlq``), the overdue deadline to ``BATCH_OVERDUE_MS``. ``status`` exits 0
when the batch is ``complete``, 1 when ``complete_with_rejects``, 3 while ``open`` or ``overdue`` (or no
manifest is published yet), 2 on a usage or configuration error (one line on stderr). The work is done by
:mod:`neotool_common.batches`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from neotool_common.batches.cluster import BatchCluster
from neotool_common.batches.manifest import manifest_topic_for
from neotool_common.batches.render import dlq_command, render_list, render_status
from neotool_common.batches.settings import BatchSettings
from neotool_common.batches.status import summaries
from neotool_common.batches.summary import BatchState, BatchSummary
from neotool_common.cli.usage import UsageParser, configured, parse
from neotool_common.config.connection import KafkaConnection
from neotool_common.errors import ConfigurationError

__all__ = ["main"]

PROG = "neotool-batch"
EXIT_COMPLETE, EXIT_REJECTS, EXIT_UNSETTLED = 0, 1, 3
_WAIT_STEP_S = 1.0


def build_parser() -> argparse.ArgumentParser:
    common = UsageParser(add_help=False, allow_abbrev=False)
    common.add_argument("--topic", action="append", help="the batches' topic (repeatable); default $KAFKA_TOPICS")
    common.add_argument("--group", help="the consumer group; default $KAFKA_GROUP_ID")
    common.add_argument("--brokers", help="host:port[,...]; default $KAFKA_BROKERS (security from KAFKA_* vars)")
    common.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the cluster")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    parser = UsageParser(prog=PROG, description="Reconcile batches for a consumer group.", allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=UsageParser)
    commands.add_parser("list", help="every batch and its state", parents=[common], allow_abbrev=False)
    status = commands.add_parser("status", help="one batch in full", parents=[common], allow_abbrev=False)
    status.add_argument("batch_id", metavar="BATCH_ID")
    status.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long for settlement")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(build_parser(), argv)
    if isinstance(args, int):
        return args
    return configured(PROG, lambda: cmd_list(args) if args.command == "list" else cmd_status(args))


@dataclass(frozen=True)
class _Context:
    cluster: BatchCluster
    topics: list[str]
    group: str
    settings: BatchSettings
    topic_setting: str  # what to name when a topic does not exist: --topic, or KAFKA_TOPICS it came from

    def summaries(self, topic: str, batch_id: str | None = None) -> list[BatchSummary]:
        now_ms, overdue_ms = int(time.time() * 1000), self.settings.overdue_ms
        return summaries(
            self.cluster,
            topic,
            self.group,
            now_ms=now_ms,
            overdue_ms=overdue_ms,
            batch_id=batch_id,
            setting=self.topic_setting,
        )

    def find(self, batch_id: str) -> BatchSummary | None:
        return next((found[0] for topic in self.topics if (found := self.summaries(topic, batch_id))), None)


def cmd_list(args: argparse.Namespace) -> int:
    context = _context(args)
    found = [summary for topic in context.topics for summary in context.summaries(topic)]
    print(json.dumps([s.as_json() for s in found]) if args.json else render_list(found))
    return EXIT_COMPLETE


def cmd_status(args: argparse.Namespace) -> int:
    context = _context(args)
    deadline = time.monotonic() + max(0.0, args.wait)
    while True:
        summary = context.find(args.batch_id)
        if (summary is not None and summary.state.settled) or time.monotonic() >= deadline:
            break
        time.sleep(min(_WAIT_STEP_S, max(0.0, deadline - time.monotonic())))
    if summary is None:
        where = ", ".join(manifest_topic_for(topic) for topic in context.topics)
        print(f"{PROG}: batch {args.batch_id}: no manifest on {where} yet")
        return EXIT_UNSETTLED
    if args.json:
        print(json.dumps({**summary.as_json(), "dlq_command": dlq_command(summary)}))
    else:
        print(render_status(summary))
    return {BatchState.COMPLETE: EXIT_COMPLETE, BatchState.COMPLETE_WITH_REJECTS: EXIT_REJECTS}.get(
        summary.state, EXIT_UNSETTLED
    )


def _context(args: argparse.Namespace) -> _Context:
    env = dict(os.environ)
    if args.brokers:
        env["KAFKA_BROKERS"] = args.brokers
    topics = args.topic or [t.strip() for t in env.get("KAFKA_TOPICS", "").split(",") if t.strip()]
    if not topics:
        raise ConfigurationError("KAFKA_TOPICS", "is required (or --topic): the topic the batches were published to")
    group = args.group or env.get("KAFKA_GROUP_ID", "").strip()
    if not group:
        raise ConfigurationError("KAFKA_GROUP_ID", "is required (or --group): the group to reconcile for")
    cluster = BatchCluster(KafkaConnection.from_env(env), timeout_s=args.timeout)
    return _Context(cluster, topics, group, BatchSettings.from_env(env), "--topic" if args.topic else "KAFKA_TOPICS")


if __name__ == "__main__":
    sys.exit(main())
