"""Where a replayed copy goes and which consumer group processes it: a :class:`ReplayTarget`, chosen by :func:`route`.

==================  ======================  ====================================================================
replay              topic                   processed by
==================  ======================  ====================================================================
(default)           ``dlq.original.topic``  only the group in ``dlq.consumer.group``; other groups reading the
                                            topic commit past the copy without processing it
``--to TOPIC``      TOPIC                   the same: only that group, among the groups reading TOPIC
``--all-groups``    either of the above     every group reading the topic, as if the record were new
==================  ======================  ====================================================================

The scope travels in the copy's ``dlq.replay.group`` header, which every runner checks before it reads a record
(:mod:`neotool_common.consumer.replay_scope`): it needs no topic of its own. A record naming no group (not
dead-lettered by a runner) reaches every group, and the plan says so.

:func:`route` is the one place that makes this choice. A group with retry tiers could be reached through its own
retry topic instead (``<source>.retry.<group>.<delay>``, :mod:`neotool_common.policies.retry_topics`): that is one
more kind of :class:`ReplayTarget`, with the retry copy's headers in ``headers``, found through the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from neotool_common.deadletter.headers import DLQ_REPLAY_GROUP
from neotool_common.dlqtool.records import DlqRecord, Header

__all__ = ["ReplayTarget", "TargetCatalog", "route"]


class TargetCatalog(Protocol):
    """Partition count of a topic, ``None`` when it does not exist (cached by implementations)."""

    def partitions(self, topic: str) -> int | None: ...


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
    partitions = catalog.partitions(topic)
    if partitions is None:
        return None
    partition = None
    if keep_partition and record.original_partition is not None and 0 <= record.original_partition < partitions:
        partition = record.original_partition
    group = None if all_groups else record.consumer_group or None
    headers = ((DLQ_REPLAY_GROUP, group.encode()),) if group else ()
    return ReplayTarget(topic, partition, group, headers)
