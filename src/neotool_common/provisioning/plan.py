"""What a consumer needs on the cluster, topic by topic: a pure plan, compared with what already exists.

For each source topic the consumer reads:

=======================  ==========================================================================
``<topic>``               only with ``with_source`` (local work: in production its producer owns it)
``<topic>.dlq``           the source's partitions and replication factor; ``retention.ms`` 30 days;
                          ``max.message.bytes`` the source's limit plus :data:`DLQ_HEADER_HEADROOM_BYTES`;
                          ``min.insync.replicas`` 2 from three replicas on (the DLQ producer writes ``acks=all``)
``<topic>.dlq.parked``    where ``neotool-dlq replay`` parks records that keep coming back; like the DLQ, kept
                          until someone decides (``retention.ms`` -1)
``<topic>.batches``       only with ``with_batches``: batch manifests (docs/batches.md); compacted, 1 partition
``<topic>.batches.done``  only with ``with_batches``: batch announcements; compacted, 1 partition
``<topic>.retry.<group>.  one per delay tier of a group that has tiers (``retry_group``, ``retry_delays_ms``);
<delay>``                 the source's partitions and replicas, the DLQ's configs (a retry copy is the record
                          plus bounded ``retry.*`` headers, and must outlive any outage it waits out)
=======================  ==========================================================================

A dead-letter copy is the source record, byte for byte, plus the ``dlq.*`` headers; the DLQ producer's own limit
is lifted (``RunnerSettings.dlq_producer_config``), so the topic's ``max.message.bytes`` is what decides whether
a copy fits. A group without tiers needs no retry topic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from neotool_common.batches.manifest import announcement_topic_for, manifest_topic_for
from neotool_common.deadletter.headers import PARKED_SUFFIX, dlq_topic_for
from neotool_common.deadletter.publisher import DlqPolicy
from neotool_common.policies.retry_topics import retry_topics

__all__ = [
    "DEFAULT_DLQ_RETENTION_MS",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DLQ_HEADER_HEADROOM_BYTES",
    "ExistingTopic",
    "Role",
    "TopicSpec",
    "batch_topics",
    "config_names",
    "differences",
    "dlq_configs",
    "dlq_header_bytes_bound",
    "plan_topics",
    "unmet_configs",
]

DEFAULT_DLQ_RETENTION_MS: Final = 30 * 24 * 3600 * 1000  # a month: a long weekend, a slow triage, a fix deployed
# Kafka's default message.max.bytes (broker) and max.message.bytes (topic): 1 MiB plus the batch overhead.
DEFAULT_MAX_MESSAGE_BYTES: Final = 1_048_588
# Room for the dlq.* headers on top of the source record; dlq_header_bytes_bound() shows it suffices.
DLQ_HEADER_HEADROOM_BYTES: Final = 64 * 1024
# Configs compared as "at least": a longer retention or a larger limit than planned is fine (-1: unlimited).
_AT_LEAST: Final = frozenset({"retention.ms", "max.message.bytes", "min.insync.replicas"})


def dlq_header_bytes_bound(policy: DlqPolicy | None = None) -> int:
    """The most bytes the ``dlq.*`` headers of one copy take: the bounded exception text at four UTF-8 bytes a
    character, topic and group names (249 bytes each at most), and the short ones with their names."""
    policy = policy or DlqPolicy()
    texts = 4 * (policy.max_stacktrace_chars + policy.max_message_chars)
    names = 3 * 249  # original topic, group, and a path of that order
    return texts + names + 12 * 64


class Role(StrEnum):
    SOURCE = "source"
    DLQ = "dlq"
    PARKED = "parked"
    BATCHES = "batches"
    RETRY = "retry"


@dataclass(frozen=True)
class ExistingTopic:
    """A topic as the cluster has it: partitions, replication factor and the configs the plan cares about."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicSpec:
    """One topic the consumer needs: create it with exactly these partitions, replication factor and configs."""

    name: str
    role: Role
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """``partitions=3 replication.factor=1 max.message.bytes=…`` on one line."""
        settings = [f"partitions={self.partitions}", f"replication.factor={self.replication_factor}"]
        return " ".join(settings + [f"{k}={v}" for k, v in sorted(self.configs.items())])


def dlq_configs(source_max_message_bytes: int, retention_ms: int, replication_factor: int) -> dict[str, str]:
    configs = {
        "cleanup.policy": "delete",  # never compact: two failures of one key are two records to look at
        "retention.ms": str(retention_ms),
        "max.message.bytes": str(source_max_message_bytes + DLQ_HEADER_HEADROOM_BYTES),
    }
    if replication_factor >= 3:
        configs["min.insync.replicas"] = "2"
    return configs


def plan_topics(
    sources: Sequence[str],
    existing: Mapping[str, ExistingTopic],
    *,
    with_source: bool,
    partitions: int,
    replication_factor: int,
    dlq_retention_ms: int = DEFAULT_DLQ_RETENTION_MS,
    with_batches: bool = False,
    retry_group: str = "",
    retry_delays_ms: tuple[int, ...] = (),
) -> list[TopicSpec]:
    """Every topic ``sources`` need, in order (each source, its DLQ, its parked topic, then its retry tiers).

    An existing source gives its DLQs its partitions, replication factor and ``max.message.bytes``; a missing
    one is planned with ``partitions`` and ``replication_factor`` (raise in the caller if it may not be created).
    """
    specs: list[TopicSpec] = []
    for source in dict.fromkeys(sources):
        found = existing.get(source)
        count = found.partitions if found else partitions
        replicas = found.replication_factor if found else replication_factor
        if with_source:
            specs.append(TopicSpec(source, Role.SOURCE, count, replicas))
        limit = int(found.configs.get("max.message.bytes", DEFAULT_MAX_MESSAGE_BYTES)) if found else None
        configs = dlq_configs(limit or DEFAULT_MAX_MESSAGE_BYTES, dlq_retention_ms, replicas)
        dlq = dlq_topic_for(source)
        specs.append(TopicSpec(dlq, Role.DLQ, count, replicas, configs))
        specs.append(TopicSpec(dlq + PARKED_SUFFIX, Role.PARKED, count, replicas, {**configs, "retention.ms": "-1"}))
        if with_batches:
            specs += batch_topics(source, replicas)
        if retry_delays_ms:
            specs += [TopicSpec(t, Role.RETRY, count, replicas, configs)
                      for t in retry_topics(source, retry_group, retry_delays_ms)]  # fmt: skip
    return specs


def batch_topics(source: str, replication_factor: int) -> list[TopicSpec]:
    """The manifest and announcement topics of ``source``: compacted (one record per key survives), 1 partition."""
    configs = {"cleanup.policy": "compact"}
    if replication_factor >= 3:
        configs["min.insync.replicas"] = "2"
    names = (manifest_topic_for(source), announcement_topic_for(source))
    return [TopicSpec(name, Role.BATCHES, 1, replication_factor, configs) for name in names]


def differences(spec: TopicSpec, found: ExistingTopic) -> list[str]:
    """How an existing topic falls short of ``spec``, one phrase each (empty: it serves the consumer as is)."""
    problems: list[str] = []
    if spec.role is not Role.SOURCE and found.partitions < spec.partitions:
        problems.append(f"partitions={found.partitions}, wanted {spec.partitions} (as many as its source)")
    for name, wanted in unmet_configs(spec, found).items():
        actual = found.configs.get(name)
        qualifier = "at least " if name in _AT_LEAST and wanted != "-1" else ""
        shown = "unknown (not readable)" if actual is None else actual
        problems.append(f"{name}={shown}, wanted {qualifier}{wanted}")
    return problems


def unmet_configs(spec: TopicSpec, found: ExistingTopic) -> dict[str, str]:
    """The configs of ``spec`` that ``found`` does not meet (or that could not be read), with their planned value."""
    return {
        name: wanted
        for name, wanted in sorted(spec.configs.items())
        if (actual := found.configs.get(name)) is None or not _satisfies(name, actual, wanted)
    }


def _satisfies(name: str, actual: str, wanted: str) -> bool:
    if name not in _AT_LEAST:
        return actual == wanted
    if name == "retention.ms" and actual == "-1":
        return True
    if name == "retention.ms" and wanted == "-1":
        return False
    try:
        return int(actual) >= int(wanted)
    except ValueError:
        return False


def config_names(specs: Iterable[TopicSpec]) -> frozenset[str]:
    """Every config name the plan sets: what to read back from the cluster for :func:`differences`."""
    return frozenset(name for spec in specs for name in spec.configs) | {"max.message.bytes"}
