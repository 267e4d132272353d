"""Where a replay starts and ends in each partition, and what it would do: the dry run.

:func:`plan_replay` makes the same decisions as :class:`~neotool_common.dlqtool.replay.Replay` from the same
committed offsets, but reads without a group and produces, commits and creates nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

from neotool_common.dlqtool.cluster import DlqCluster, OffsetRange, TopicInfo
from neotool_common.dlqtool.decisions import Action, Decision, ReplayPolicy, decide
from neotool_common.dlqtool.filters import RecordFilter
from neotool_common.dlqtool.reader import read_range
from neotool_common.policies.retry_topics import RETRY_INFIX, first_retry_topic

__all__ = ["TopicCatalog", "plan_replay", "scan_range"]


def scan_range(
    partition: int,
    snapshot: OffsetRange,
    committed: int | None,
    record_filter: RecordFilter,
    from_beginning: bool,
) -> OffsetRange:
    """Offsets of ``partition`` a replay reads: from the committed offset (or the beginning) to the snapshot
    end, narrowed by the filter's partitions and offsets; empty when there is nothing to read."""
    start = snapshot.start if from_beginning or committed is None else max(committed, snapshot.start)
    end = snapshot.end
    if record_filter.offset_from is not None:
        start = max(start, record_filter.offset_from)
    if record_filter.offset_to is not None:
        end = min(end, record_filter.offset_to + 1)
    if record_filter.partitions and partition not in record_filter.partitions:
        end = start
    return OffsetRange(start, max(start, end))


class TopicCatalog:
    """Partition counts of replay targets, asked once per topic; and the groups' retry topics."""

    def __init__(self, cluster: DlqCluster) -> None:
        self._cluster = cluster
        self._known: dict[str, int | None] = {}
        self._tiers: dict[str, str | None] = {}

    def partitions(self, topic: str) -> int | None:
        if topic not in self._known:
            self._known[topic] = self._cluster.topic(topic).partitions if self._cluster.exists(topic) else None
        return self._known[topic]

    def retry_topic(self, source: str, group: str) -> str | None:
        """The tier-1 retry topic of ``group`` for ``source``, None when the group has no tiers (asked once)."""
        key = f"{source}{RETRY_INFIX}{group}"
        if key not in self._tiers:
            self._tiers[key] = first_retry_topic(self._cluster.topics_named(source + RETRY_INFIX), source, group)
        return self._tiers[key]

    def remember(self, info: TopicInfo) -> None:
        self._known[info.name] = info.partitions


def plan_replay(
    cluster: DlqCluster,
    dlq: TopicInfo,
    record_filter: RecordFilter,
    policy: ReplayPolicy,
    group: str,
    from_beginning: bool = False,
) -> Iterator[Decision]:
    """The decisions a replay with ``group`` would make now, without producing or committing anything."""
    with closing(cluster.reader()) as reader:
        snapshot = cluster.watermarks(reader, dlq)
        with closing(cluster.group_consumer(group)) as group_reader:
            committed = {} if from_beginning else cluster.committed(group_reader, dlq)
        ranges = {p: scan_range(p, r, committed.get(p), record_filter, from_beginning) for p, r in snapshot.items()}
        catalog = TopicCatalog(cluster)
        selected = 0
        for record in read_range(reader, dlq.name, ranges, cluster.timeout_s):
            decision = decide(record, record_filter, policy, catalog)
            yield decision
            selected += decision.action is not Action.SKIP
            if policy.limit is not None and selected >= policy.limit:
                return
