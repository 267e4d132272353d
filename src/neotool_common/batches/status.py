"""A topic's batches for one group, reconciled from what the cluster holds now (retry tiers included)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from neotool_common.batches.cluster import BatchCluster
from neotool_common.batches.manifest import BatchManifest
from neotool_common.batches.reconcile import DlqFact, reconcile
from neotool_common.batches.retrying import RetryWaiting
from neotool_common.batches.summary import BatchSummary
from neotool_common.errors import ConfigurationError

__all__ = ["reconcile_all", "summaries"]


def summaries(
    cluster: BatchCluster,
    topic: str,
    group: str,
    *,
    now_ms: int,
    overdue_ms: int,
    batch_id: str | None = None,
    setting: str = "KAFKA_TOPICS",
) -> list[BatchSummary]:
    """Every batch of ``topic`` (or just ``batch_id``), oldest first; raises when ``topic`` does not exist."""
    partitions = cluster.partitions(topic)
    if partitions is None:
        raise ConfigurationError(setting, f"topic {topic!r} does not exist")
    manifests = cluster.manifests(topic)
    if batch_id is not None:
        manifests = {batch_id: manifests[batch_id]} if batch_id in manifests else {}
    if not manifests:
        return []
    committed = cluster.committed(group, topic, partitions)  # in this order: see .retrying
    waiting = RetryWaiting(cluster, topic, group)
    try:
        in_retry = waiting.positions()
    finally:
        waiting.close()
    dlq = cluster.dlq_facts(topic)
    return reconcile_all(
        manifests.values(), group, committed, dlq, now_ms=now_ms, overdue_ms=overdue_ms, in_retry=in_retry
    )


def reconcile_all(
    batches: Iterable[Sequence[BatchManifest]],
    group: str,
    committed: dict[int, int],
    dlq: Sequence[DlqFact],
    *,
    now_ms: int,
    overdue_ms: int,
    in_retry: Collection[tuple[int, int]] = (),
) -> list[BatchSummary]:
    found = [
        reconcile(parts, group, committed, dlq, now_ms=now_ms, overdue_ms=overdue_ms, in_retry=in_retry)
        for parts in batches
    ]
    return sorted(found, key=lambda summary: (summary.published_at, summary.batch_id))
