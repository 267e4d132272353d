"""``neotool-topics``: create the topics a consumer needs (its ``.dlq`` and ``.dlq.parked``, its group's retry
topics when it has delay tiers, and for local work its source), idempotently; or print them, with the exact
configs, for whoever may create them.

::

    KAFKA_TOPICS=people.ingest.v1 neotool-topics [--with-source] [--with-batches] [--dry-run]
    neotool-topics --consumer people_loader.flows.consumer:PeopleLoaderConsumer [--partitions N]
                   [--replication-factor N] [--dlq-retention-days 30] [--timeout 15]

The topics come from ``KAFKA_TOPICS``, else from the ``topics`` of the ``--consumer`` class; the retry tiers from
``RETRY_TOPIC_DELAYS_MS`` and ``KAFKA_GROUP_ID``, else from the class's ``retry_topic_delays_ms`` and ``group_id``;
the cluster from
``KAFKA_BROKERS`` and the ``KAFKA_SECURITY_*``/``KAFKA_SASL_*``/``KAFKA_SSL_*`` settings, as for the consumer.
Exit codes: 0 all topics in place (or the dry run printed them); 1 an existing topic differs from the plan
(nothing changed; the ``kafka-configs.sh --alter`` lines are printed); 2 usage, configuration or connection
error (one line); 3 not authorized to create topics (the commands for an administrator are printed); 4 the
cluster refused a topic for another reason. The work is done by :mod:`neotool_common.provisioning`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from neotool_common.cli.usage import EXIT_USAGE, configured, parse
from neotool_common.config.connection import KafkaConnection
from neotool_common.errors import ConfigurationError
from neotool_common.policies.retry_topics import RetryTopicPolicy, parse_delays
from neotool_common.provisioning.cluster import KafkaTopicAdmin
from neotool_common.provisioning.plan import DEFAULT_DLQ_RETENTION_MS, TopicSpec, unmet_configs
from neotool_common.provisioning.provision import Outcome, ProvisionRequest, Report, Status, provision

__all__ = [
    "EXIT_USAGE", "PROG", "alter_commands", "handover_commands", "main", "render", "retry_tiers_of", "topics_of",
]  # fmt: skip

PROG = "neotool-topics"
_DAY_MS = 24 * 3600 * 1000
_BOOTSTRAP = '--bootstrap-server "$KAFKA_BROKERS"'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--consumer", metavar="MODULE:CLASS", help="read the topics from this consumer class")
    parser.add_argument("--with-source", action="store_true", help="create the source topics too (local work)")
    parser.add_argument(
        "--with-batches", action="store_true", help="create <topic>.batches and .batches.done (docs/batches.md)"
    )
    parser.add_argument("--partitions", type=int, help="partitions of a source that does not exist yet (3)")
    parser.add_argument("--replication-factor", type=int, help="of new topics (default: min(3, brokers))")
    parser.add_argument(
        "--dlq-retention-days", type=float, default=DEFAULT_DLQ_RETENTION_MS / _DAY_MS, help="(default: 30)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print what would be created; create nothing")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds to wait for the cluster (15)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run once; returns the exit code (usage errors included, never raises them)."""
    args = parse(build_parser(), argv)
    return args if isinstance(args, int) else configured(PROG, lambda: _provision(args))


def _provision(args: argparse.Namespace) -> int:
    connection = KafkaConnection.from_env()
    request = ProvisionRequest(
        sources=topics_of(args.consumer, os.environ),
        with_source=args.with_source,
        with_batches=args.with_batches,
        partitions=args.partitions,
        replication_factor=args.replication_factor,
        dlq_retention_ms=round(args.dlq_retention_days * _DAY_MS),
        dry_run=args.dry_run,
        **retry_tiers_of(args.consumer, os.environ),
    )
    report = provision(request, KafkaTopicAdmin(connection, timeout_s=args.timeout))
    print(render(report, connection.brokers, dry_run=args.dry_run))
    return report.exit_code


def topics_of(consumer: str | None, env: Mapping[str, str]) -> tuple[str, ...]:
    """``KAFKA_TOPICS`` when set, else the ``topics`` of ``consumer`` (``module:Class``)."""
    listed = tuple(t.strip() for t in env.get("KAFKA_TOPICS", "").split(",") if t.strip())
    if listed or consumer is None:
        return listed
    return tuple(getattr(_load(consumer), "topics", ()) or ())


def retry_tiers_of(consumer: str | None, env: Mapping[str, str]) -> dict[str, Any]:
    """The group and delay tiers whose retry topics to create: the environment's, else the class's."""
    cls = _load(consumer) if consumer else None
    raw = env.get("RETRY_TOPIC_DELAYS_MS", "").strip()
    try:
        delays = parse_delays(raw) if raw else tuple(getattr(cls, "retry_topic_delays_ms", ()) or ())
        RetryTopicPolicy(delays)
    except ValueError as error:
        raise ConfigurationError("RETRY_TOPIC_DELAYS_MS", str(error)) from None
    group = env.get("KAFKA_GROUP_ID", "").strip() or str(getattr(cls, "group_id", "") or "")
    return {"group_id": group, "retry_delays_ms": delays}


def _load(consumer: str) -> Any:
    module_name, _, class_name = consumer.partition(":")
    if not module_name or not class_name:
        raise ConfigurationError("--consumer", f"{consumer!r} is not module:Class")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as error:
        raise ConfigurationError("--consumer", f"cannot load {consumer}: {error}") from None


def render(report: Report, brokers: str, *, dry_run: bool) -> str:
    width = max((len(o.spec.name) for o in report.outcomes), default=0)
    lines = []
    for outcome in report.outcomes:
        detail = outcome.detail or outcome.spec.describe()
        lines.append(f"{outcome.status.value:<12}  {outcome.spec.name:<{width}}  {detail}")
    handover = report.with_status(Status.WOULD_CREATE, Status.DENIED)
    if handover:
        denied = bool(report.with_status(Status.DENIED))
        lines.append("")
        if denied:
            lines.append(f"Not authorized to create topics on {brokers}; hand these commands to a cluster admin:")
        elif dry_run:
            lines.append("Dry run: nothing was created. The same by hand:")
        lines += handover_commands([o.spec for o in handover])
    differing = report.with_status(Status.DIFFERS)
    if differing:
        lines += ["", "Existing topics that differ were left as they are; to bring them in line:"]
        lines += alter_commands(differing)
    return "\n".join(lines)


def alter_commands(outcomes: Sequence[Outcome]) -> list[str]:
    """The ``kafka-configs.sh --alter`` (and ``kafka-topics.sh --alter --partitions``) lines for topics that differ."""
    commands = []
    for outcome in outcomes:
        spec, found = outcome.spec, outcome.found
        if found is None:
            continue
        topic = shlex.quote(spec.name)
        unmet = unmet_configs(spec, found)
        if unmet:
            pairs = shlex.quote(",".join(f"{name}={value}" for name, value in unmet.items()))
            commands.append(
                f"  kafka-configs.sh {_BOOTSTRAP} --alter --entity-type topics "
                f"--entity-name {topic} --add-config {pairs}"
            )
        if found.partitions < spec.partitions:
            commands.append(f"  kafka-topics.sh {_BOOTSTRAP} --alter --topic {topic} --partitions {spec.partitions}")
    return commands


def handover_commands(specs: Sequence[TopicSpec]) -> list[str]:
    """One ``kafka-topics.sh --create`` line per topic, with every config, for an administrator to run."""
    commands = []
    for spec in specs:
        words = ["kafka-topics.sh", "--bootstrap-server", '"$KAFKA_BROKERS"', "--create", "--if-not-exists"]
        words += ["--topic", shlex.quote(spec.name), "--partitions", str(spec.partitions)]
        words += ["--replication-factor", str(spec.replication_factor)]
        for name, value in sorted(spec.configs.items()):
            words += ["--config", shlex.quote(f"{name}={value}")]
        commands.append("  " + " ".join(words))
    return commands
