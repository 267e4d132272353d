"""What the replay groups of a DLQ already went past.

A replay never changes the records of the DLQ (a copy goes to the original topic; the DLQ record stays), so a
record's ``dlq.replay.count`` says nothing of this run. The replay's consumer group does: it commits its offsets
on the DLQ as it goes, and every record below them was replayed, parked or reported. ``list`` and ``stats`` ask
the groups named ``neotool-dlq-replay.<dlq>`` (the unfiltered replay) and ``….f<fingerprint>`` (filtered ones).
"""

from __future__ import annotations

from dataclasses import dataclass

from neotool_common.dlqtool.cluster import DlqCluster, OffsetRange, TopicInfo
from neotool_common.dlqtool.decisions import GROUP_PREFIX
from neotool_common.dlqtool.records import DlqRecord

__all__ = ["GroupProgress", "replay_progress"]


@dataclass(frozen=True)
class GroupProgress:
    """One replay group: its committed offset on each partition of the DLQ, and how many records lie below."""

    group: str
    committed: dict[int, int]
    passed: int

    def went_past(self, record: DlqRecord) -> bool:
        return record.offset < self.committed.get(record.partition, -1)


def replay_progress(cluster: DlqCluster, dlq: TopicInfo, snapshot: dict[int, OffsetRange]) -> list[GroupProgress]:
    """The replay groups of ``dlq`` that committed anything, each with the records of ``snapshot`` it passed."""
    base = GROUP_PREFIX + dlq.name
    groups = [g for g in cluster.groups_named(base) if g == base or g.startswith(base + ".f")]
    found = []
    for group in groups:
        committed = cluster.group_offsets(group, dlq)
        if committed:
            passed = sum(
                max(0, min(committed.get(p, held.start), held.end) - held.start) for p, held in snapshot.items()
            )
            found.append(GroupProgress(group, committed, passed))
    return found
