"""Where a replayed copy goes and which consumer group processes it: a :class:`ReplayTarget`, chosen by :func:`route`.

==================  ======================  ====================================================================
replay              topic                   processed by
==================  ======================  ====================================================================
(default), the      its first retry topic   only that group: nobody else reads the topic. The copy is due at once
group has tiers     ``<source>.retry.       and carries the record's ``retry.*`` headers (attempt history, root
                    <group>.<delay>``       cause), so failing again it moves on through the tiers
(default)           ``dlq.original.topic``  only the group in ``dlq.consumer.group``; other groups reading the
                                            topic commit past the copy without processing it
``--to TOPIC``      TOPIC                   the same: only that group, among the groups reading TOPIC
``--all-groups``    either of the above     every group reading the topic, as if the record were new
==================  ======================  ====================================================================

The scope travels in the copy's ``dlq.replay.group`` header, which every runner checks before it reads a record
(:mod:`neotool_common.consumer.replay_scope`): it needs no topic of its own. A record naming no group (not
dead-lettered by a runner) reaches every group, and the plan says so.

:func:`route` is the one place that makes this choice. A group has tiers when the cluster has a topic named like
its retry topics (:mod:`neotool_common.policies.retry_topics`); the one with the shortest delay is its tier 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from neotool_common.consumer.tiers.carried import Carried
from neotool_common.deadletter.headers import DLQ_REPLAY_GROUP
from neotool_common.deadletter.retry_headers import history_entry
from neotool_common.dlqtool.records import DlqRecord, Header

__all__ = ["ReplayTarget", "TargetCatalog", "retry_copy_headers", "route"]


class TargetCatalog(Protocol):
    """Partition count of a topic, ``None`` when it does not exist; a group's tier-1 retry topic for a source,
    ``None`` when it has no tiers (both cached by implementations)."""

    def partitions(self, topic: str) -> int | None: ...
    def retry_topic(self, source: str, group: str) -> str | None: ...


@dataclass(frozen=True)
class ReplayTarget:
    """One copy's destination.

    ``topic``      where it is produced
    ``partition``  its partition there; ``None`` lets the key decide (murmur2)
    ``group``      the one consumer group that processes it; ``None``: every group reading ``topic``
    ``headers``    what the copy gains once the headers a replay manages are removed from the record's
    """

    topic: str
    partition: int | None = None
    group: str | None = None
    headers: tuple[Header, ...] = ()

    @property
    def audience(self) -> str:
        """Who processes the copy, for people: ``group enrichment`` or ``every group reading orders.v1``."""
        return f"group {self.group}" if self.group else f"every group reading {self.topic}"


def route(
    record: DlqRecord, topic: str, catalog: TargetCatalog, *, all_groups: bool, keep_partition: bool
) -> ReplayTarget | None:
    """The destination of ``record``'s copy in ``topic``; ``None`` when ``topic`` does not exist.

    ``keep_partition`` sends it back to the partition it came from, when the topic still has it, so that its
    key's order holds; ``all_groups`` leaves out the group scope.
    """
    group = None if all_groups else record.consumer_group or None
    tier = catalog.retry_topic(topic, group) if group and topic == record.original_topic else None
    partitions = catalog.partitions(tier or topic)
    if partitions is None:
        return None
    partition = None
    if keep_partition and record.original_partition is not None and 0 <= record.original_partition < partitions:
        partition = record.original_partition
    headers = ((DLQ_REPLAY_GROUP, group.encode()),) if group else ()
    if tier is not None and group is not None:
        return ReplayTarget(tier, partition, group, (*retry_copy_headers(record, group), *headers))
    return ReplayTarget(topic, partition, group, headers)


def retry_copy_headers(record: DlqRecord, group: str) -> tuple[Header, ...]:
    """The ``retry.*`` headers of a replay through the group's tier 1: due at once, the source record's
    coordinates, its attempt history (the dead-letter's failure as its one entry when it had no tiers)."""
    carried = Carried.read(list(record.headers), record.original_topic or "", record.original_partition or 0,
                           record.original_offset or 0, record.original_timestamp_ms)  # fmt: skip
    if not carried.history:
        failed = record.failed_at_time
        failed_ms = int(failed.timestamp() * 1000) if failed is not None else 0
        carried.attempts = record.attempts or 1
        entry = history_entry(
            0, carried.attempts, failed_ms, record.exception_type or "", record.exception_message or ""
        )
        carried.history.append(entry)
    return tuple(carried.headers([], 1, 0, group))
