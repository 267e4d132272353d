"""Which records of a source topic still wait in one group's retry topics (docs/retry-topics.md).

A record whose in-place attempts are spent is copied to the group's tier 1 (``<source>.retry.<group>.<delay>``)
and only once the broker acknowledged that copy is its source offset committable. From then on the record is
*pending* while a copy of it waits in a tier: a copy at or past the group's committed offset on its retry
partition. A copy before that offset is finished: processed, or moved on — to a later tier (written, and
acknowledged, before the earlier copy was committed past) or to the source's DLQ as ``retries_exhausted`` with
the source coordinates in ``dlq.original.*``. So every record is always visible somewhere, provided the facts are
read in this order: the source's committed offsets, then the committed offsets of every tier, then each tier's
records from there to the high watermarks taken after that, then the DLQ. (A copy committed past moved on before
that commit, so its next copy was written before the records are read, and is either read or was itself committed
past before its tier's offsets were read, and so on to a processed record or a DLQ copy. This holds whatever
order the tiers' delays are in.)

A copy names its source record with ``retry.original.partition`` and ``retry.original.offset``; the source topic
is the one the tier's own name retries (as the runner reads it), whatever a header claims.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from neotool_common.batches.cluster import BatchCluster, TopicTail
from neotool_common.deadletter.retry_headers import RETRY_ORIGINAL_OFFSET, RETRY_ORIGINAL_PARTITION, header_text
from neotool_common.policies.retry_topics import group_retry_topics

__all__ = ["RetryWaiting", "retry_position_of", "waiting_positions"]

Position = tuple[int, int]


def retry_position_of(message: Any) -> Position | None:
    """The source ``(partition, offset)`` a retry copy stands for; ``None`` when its headers do not say."""
    headers = message.headers() or ()
    try:
        return int(header_text(headers, RETRY_ORIGINAL_PARTITION) or ""), int(
            header_text(headers, RETRY_ORIGINAL_OFFSET) or ""
        )
    except ValueError:
        return None


def waiting_positions(messages: Iterable[Any], committed: Mapping[int, int]) -> frozenset[Position]:
    """The source positions of the copies (of one retry topic) at or past the group's committed offset.

    ``committed`` maps a partition of the retry topic to the group's committed offset there (absent: none yet,
    so every copy of that partition waits).
    """
    found: set[Position] = set()
    for message in messages:
        if message.offset() < committed.get(message.partition(), 0):
            continue
        position = retry_position_of(message)
        if position is not None:
            found.add(position)
    return frozenset(found)


class RetryWaiting:
    """The source positions waiting in ``group``'s retry topics for ``source``; keeps its readers between calls."""

    def __init__(self, cluster: BatchCluster, source: str, group: str) -> None:
        self.source = source
        self.group = group
        self._cluster = cluster
        self._tails: dict[str, TopicTail] = {}

    def positions(self) -> frozenset[Position]:
        """Read now; call it after reading the source's committed offsets and before reading the DLQ."""
        tiers: list[tuple[TopicTail, dict[int, int]]] = []
        for topic in group_retry_topics(self._cluster.topic_names(), self.source, self.group):
            tail = self._tails.get(topic) or self._cluster.tail(topic)
            if tail is None:
                continue  # deleted since it was listed
            self._tails[topic] = tail
            tiers.append((tail, self._cluster.committed(self.group, topic, tail.partitions)))
        found: set[Position] = set()
        for tail, committed in tiers:  # every tier's committed offsets first, then the records: see the module
            tail.seek(committed)
            found |= waiting_positions(tail.catch_up(), committed)
        return frozenset(found)

    def close(self) -> None:
        for tail in self._tails.values():
            tail.close()
        self._tails.clear()
