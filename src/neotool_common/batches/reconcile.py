"""A batch's state for a group, from durable facts only: manifests, committed offsets, DLQ copies.

* A record is **settled** for the group once the group's committed offset on its partition is past it (the
  runner commits only past records that were processed or whose DLQ copy the broker acknowledged), unless it
  is waiting in one of the group's retry topics (``in_retry``: pending, not settled; see :mod:`.retrying`).
  A record that has a DLQ copy for the group is decided by it, whatever waits in a tier: a replay through the
  tiers (``neotool-dlq replay``) does not reopen its batch.
* It is **rejected** when it is settled and the group's DLQ holds a copy of it: a copy whose
  ``dlq.original.topic/partition/offset`` is one of the manifest's positions and whose ``dlq.consumer.group``
  is the group. Copies are matched by position, so undecodable records (no readable ``batch_id``) count too,
  and several copies of one record count once; each extra copy is one **duplicate**.
* **processed** = settled - rejected; **pending** = expected - settled.

Nothing here depends on which member did the work or on any process' memory, so the answer is the same from
any member, the CLI, or after restarts, SIGKILLs and redeliveries.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from neotool_common.batches.manifest import BatchManifest, PartitionSpan
from neotool_common.batches.summary import BatchState, BatchSummary, PartitionProgress

__all__ = ["DlqFact", "merge_spans", "reconcile"]

Position = tuple[int, int]


@dataclass(frozen=True)
class DlqFact:
    """What a DLQ copy says about the record it copies."""

    original_topic: str
    partition: int
    offset: int
    group: str
    reason: str


def merge_spans(parts: Iterable[BatchManifest]) -> tuple[PartitionSpan, ...]:
    """Every part's offsets, one span per partition."""
    runs: dict[int, list[tuple[int, int]]] = {}
    for part in parts:
        for span in part.partitions:
            runs.setdefault(span.partition, []).extend(span.runs)
    return tuple(PartitionSpan(p, _merged(found)) for p, found in sorted(runs.items()))


def _merged(runs: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[list[int]] = []
    for first, last in sorted(runs):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return tuple((first, last) for first, last in merged)


def reconcile(
    parts: Sequence[BatchManifest],
    group: str,
    committed: Mapping[int, int],
    dlq: Iterable[DlqFact],
    *,
    now_ms: int,
    overdue_ms: int,
    in_retry: Collection[Position] = (),
) -> BatchSummary:
    """The summary of the batch whose (non-empty) ``parts`` are given, for ``group``.

    ``committed`` maps a partition of the batch's topic to the group's committed offset (absent: none);
    ``dlq`` may hold copies of any topic and group (the others are ignored); ``in_retry`` are positions of
    the batch's topic waiting in the group's retry topics.
    """
    first = min(parts, key=lambda part: part.published_at_ms)
    spans = merge_spans(parts)
    copies = _copies(first.topic, group, spans, dlq)
    in_retry = frozenset(position for position in in_retry if position not in copies)  # a DLQ copy decided it
    progress = tuple(_progress(span, committed.get(span.partition), in_retry) for span in spans)
    rejected_reasons = Counter(
        reason for position, (reason, _) in copies.items() if _is_settled(position, committed, in_retry)
    )
    expected = sum(part.records for part in parts)
    settled = sum(p.settled for p in progress)
    rejected = sum(rejected_reasons.values())
    declared = len({part.part for part in parts})
    wanted_parts = max(part.expected_parts for part in parts)
    age_ms = max(0, now_ms - first.published_at_ms)
    return BatchSummary(
        batch_id=first.batch_id,
        topic=first.topic,
        group=group,
        state=_state(expected - settled, rejected, declared >= wanted_parts, age_ms >= overdue_ms),
        expected=expected,
        processed=settled - rejected,
        rejected=rejected,
        pending=expected - settled,
        duplicates=sum(count - 1 for _, count in copies.values()),
        rejected_by_reason=dict(rejected_reasons),
        in_retry=sum(1 for position in in_retry if _in_spans(spans, position)),
        spooled=sum(part.spooled for part in parts),
        lost=sum(part.lost for part in parts),
        parts_declared=declared,
        parts_expected=wanted_parts,
        partitions=progress,
        published_at=first.published_at,
        age_ms=age_ms,
    )


def _state(pending: int, rejected: int, all_parts: bool, late: bool) -> BatchState:
    if pending == 0 and all_parts:
        return BatchState.COMPLETE_WITH_REJECTS if rejected else BatchState.COMPLETE
    return BatchState.OVERDUE if late else BatchState.OPEN


def _is_settled(position: Position, committed: Mapping[int, int], in_retry: Collection[Position]) -> bool:
    partition, offset = position
    return partition in committed and offset < committed[partition] and position not in in_retry


def _progress(span: PartitionSpan, committed: int | None, in_retry: Collection[Position]) -> PartitionProgress:
    settled = 0 if committed is None else span.count_below(committed)
    if committed is not None and in_retry:
        settled -= sum(1 for p, o in in_retry if p == span.partition and o < committed and span.holds(o))
    return PartitionProgress(span.partition, span.count, span.first_offset, span.last_offset, committed, settled)


def _in_spans(spans: Sequence[PartitionSpan], position: Position) -> bool:
    return any(span.partition == position[0] and span.holds(position[1]) for span in spans)


def _copies(
    topic: str, group: str, spans: Sequence[PartitionSpan], dlq: Iterable[DlqFact]
) -> dict[Position, tuple[str, int]]:
    """The batch's records with DLQ copies for ``group``: the last copy's reason, and how many copies."""
    found: dict[Position, tuple[str, int]] = {}
    by_partition = {span.partition: span for span in spans}
    for fact in dlq:
        span = by_partition.get(fact.partition)
        if fact.original_topic != topic or fact.group != group or span is None or not span.holds(fact.offset):
            continue
        position = (fact.partition, fact.offset)
        found[position] = (fact.reason, found.get(position, ("", 0))[1] + 1)
    return found
