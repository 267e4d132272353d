"""One provisioning run: look, plan, compare, create what is missing; never alter or recreate a topic.

Each planned topic ends in one :class:`Status`; :attr:`Report.exit_code` sums them up for the command line::

    0  every topic exists as planned (created now or before), or the dry run printed the plan
    1  a topic exists but differs from the plan (listed; nothing was changed)
    2  configuration error or unreachable cluster (raised as ConfigurationError by the caller's parts)
    3  not allowed to create some topics: the hand-over (topics and configs) is printed for an administrator
    4  the cluster refused a topic for another reason (its error is shown)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from neotool_common.deadletter.headers import PARKED_SUFFIX, is_dlq_topic
from neotool_common.errors import ConfigurationError
from neotool_common.provisioning.cluster import DENIED, EXISTED, TopicAdmin
from neotool_common.provisioning.plan import (
    DEFAULT_DLQ_RETENTION_MS,
    ExistingTopic,
    TopicSpec,
    config_names,
    differences,
    plan_topics,
)

__all__ = ["EXIT_CODES", "Outcome", "ProvisionRequest", "Report", "Status", "provision"]


class Status(StrEnum):
    WOULD_CREATE = "would create"
    CREATED = "created"
    EXISTS = "exists"
    DIFFERS = "differs"
    DENIED = "denied"
    FAILED = "failed"


EXIT_CODES: Final = {Status.DIFFERS: 1, Status.DENIED: 3, Status.FAILED: 4}


@dataclass(frozen=True)
class ProvisionRequest:
    """What to provision: the consumer's source topics and how to make the ones that are missing."""

    sources: tuple[str, ...]
    with_source: bool = False
    partitions: int | None = None  # default: 3 for a new source
    replication_factor: int | None = None  # default: min(3, brokers)
    dlq_retention_ms: int = DEFAULT_DLQ_RETENTION_MS
    with_batches: bool = False
    dry_run: bool = False
    group_id: str = ""  # with retry_delays_ms: the group whose retry topics to create
    retry_delays_ms: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.sources:
            raise ConfigurationError("KAFKA_TOPICS", "is required (or --consumer module:Class with topics)")
        dead_letter = next((t for t in self.sources if is_dlq_topic(t) or t.endswith(PARKED_SUFFIX)), None)
        if dead_letter is not None:
            raise ConfigurationError("KAFKA_TOPICS", f"{dead_letter} is provisioned with its source: name the source")
        if self.partitions is not None and self.partitions < 1:
            raise ConfigurationError("--partitions", f"must be at least 1, got {self.partitions}")
        if self.replication_factor is not None and self.replication_factor < 1:
            raise ConfigurationError("--replication-factor", f"must be at least 1, got {self.replication_factor}")
        if self.retry_delays_ms and not self.group_id:
            raise ConfigurationError(
                "KAFKA_GROUP_ID", "names the group whose retry topics RETRY_TOPIC_DELAYS_MS asks for"
            )


@dataclass(frozen=True)
class Outcome:
    """What became of one planned topic; ``found`` is the topic as it existed (None: it did not)."""

    spec: TopicSpec
    status: Status
    detail: str = ""
    found: ExistingTopic | None = None


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def with_status(self, *statuses: Status) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in statuses]

    @property
    def exit_code(self) -> int:
        return max((EXIT_CODES.get(o.status, 0) for o in self.outcomes), default=0)


def provision(request: ProvisionRequest, admin: TopicAdmin) -> Report:
    """Create what ``request`` needs and is missing (nothing with ``dry_run``); report every topic."""
    names = [*request.sources, *(spec.name for spec in _sketch(request))]
    existing = admin.existing(names, config_names(_sketch(request)))
    missing_sources = [s for s in request.sources if s not in existing]
    if missing_sources and not request.with_source and request.partitions is None:
        raise ConfigurationError(
            missing_sources[0],
            "the source topic does not exist: create it first (its producer owns it), "
            "or pass --with-source for local work, or --partitions N to plan the DLQs without it",
        )
    replicas = request.replication_factor or min(3, max(1, admin.broker_count()))
    specs = plan_topics(
        request.sources,
        existing,
        with_source=request.with_source,
        partitions=request.partitions or 3,
        replication_factor=replicas,
        dlq_retention_ms=request.dlq_retention_ms,
        with_batches=request.with_batches,
        retry_group=request.group_id,
        retry_delays_ms=request.retry_delays_ms,
    )
    report = Report()
    to_create: list[TopicSpec] = []
    for spec in specs:
        found = existing.get(spec.name)
        if found is None:
            to_create.append(spec)
            continue
        problems = differences(spec, found)
        status = Status.DIFFERS if problems else Status.EXISTS
        report.outcomes.append(Outcome(spec, status, "; ".join(problems), found))
    report.outcomes.extend(_create(to_create, admin, dry_run=request.dry_run))
    order = {spec.name: i for i, spec in enumerate(specs)}
    report.outcomes.sort(key=lambda o: order[o.spec.name])
    return report


def _sketch(request: ProvisionRequest) -> list[TopicSpec]:
    """The plan's topic names and config names, before anything is known of the cluster."""
    return plan_topics(
        request.sources,
        {},
        with_source=True,
        partitions=1,
        replication_factor=1,
        with_batches=request.with_batches,
        retry_group=request.group_id,
        retry_delays_ms=request.retry_delays_ms,
    )


def _create(specs: Sequence[TopicSpec], admin: TopicAdmin, *, dry_run: bool) -> list[Outcome]:
    if dry_run:
        return [Outcome(spec, Status.WOULD_CREATE) for spec in specs]
    results = admin.create(specs)
    outcomes = []
    for spec in specs:
        result = results.get(spec.name, "no answer from the cluster")
        if result is None:
            outcomes.append(Outcome(spec, Status.CREATED))
        elif result == EXISTED:
            outcomes.append(Outcome(spec, Status.EXISTS, "created meanwhile by someone else"))
        elif result == DENIED:
            outcomes.append(Outcome(spec, Status.DENIED, "not authorized to create topics"))
        else:
            outcomes.append(Outcome(spec, Status.FAILED, result))
    return outcomes
