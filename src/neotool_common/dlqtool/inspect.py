"""Read-only questions about a DLQ: which records match (``list``), one record (``show``), counts (``stats``).

Each call opens its own reader (no group, no commits), reads up to the watermarks it saw at the start and
closes it: running these against a live DLQ changes nothing and always ends.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field

from neotool_common.dlqtool.cluster import DlqCluster, OffsetRange, TopicInfo
from neotool_common.dlqtool.filters import RecordFilter
from neotool_common.dlqtool.reader import read_range
from neotool_common.dlqtool.records import DlqRecord
from neotool_common.dlqtool.stats import DlqStats
from neotool_common.errors import ConfigurationError

__all__ = ["Scan", "fetch_record", "has_dlq_headers", "scan"]


def has_dlq_headers(record: DlqRecord) -> bool:
    """True when the record carries any ``dlq.*`` header (a runner's dead-letter copy always does)."""
    return any(name.startswith("dlq.") for name, _ in record.headers)


@dataclass
class Scan:
    """One pass over a DLQ: the first ``limit`` matching records, and totals over everything read."""

    shown: list[DlqRecord] = field(default_factory=list)
    matched: int = 0
    total: int = 0
    stats: DlqStats = field(default_factory=DlqStats)
    snapshot: dict[int, OffsetRange] = field(default_factory=dict)
    read: int = 0
    with_dlq_headers: int = 0

    @property
    def looks_like_a_dlq(self) -> bool:
        """False when records were read and none carries a ``dlq.*`` header."""
        return self.read == 0 or self.with_dlq_headers > 0


def scan(
    cluster: DlqCluster, dlq: TopicInfo, record_filter: RecordFilter, limit: int | None = None, keep: bool = True
) -> Scan:
    """Read the whole DLQ (the partitions and offsets the filter allows), counting and keeping matches.

    ``stats`` counts the first ``limit`` matches; ``keep=False`` keeps no records (for ``stats`` on a big DLQ).
    """
    result = Scan()
    with closing(cluster.reader()) as reader:
        snapshot = result.snapshot = cluster.watermarks(reader, dlq)
        result.total = sum(len(r) for r in snapshot.values())
        for record in read_range(reader, dlq.name, _narrow(snapshot, record_filter), cluster.timeout_s):
            result.read += 1
            result.with_dlq_headers += has_dlq_headers(record)
            if not record_filter.matches(record):
                continue
            result.matched += 1
            if limit is None or result.matched <= limit:
                result.stats.add(record)
                if keep:
                    result.shown.append(record)
    return result


def fetch_record(cluster: DlqCluster, dlq: TopicInfo, partition: int | None, offset: int) -> DlqRecord:
    """The record at ``partition``/``offset``; :class:`ConfigurationError` naming the valid range if absent.

    Without a partition, the one partition that holds ``offset`` is used (an error names them when several do).
    """
    if partition is not None and not 0 <= partition < dlq.partitions:
        raise ConfigurationError("--partition", f"{dlq.name} has partitions 0 to {dlq.partitions - 1}")
    with closing(cluster.reader()) as reader:
        snapshot = cluster.watermarks(reader, dlq)
        partition = _partition_holding(dlq, snapshot, offset) if partition is None else partition
        held = snapshot[partition]
        if not held.start <= offset < held.end:
            raise ConfigurationError("--offset", f"no record at {offset}: {_holds(dlq, partition, held)}")
        for record in read_range(reader, dlq.name, {partition: OffsetRange(offset, offset + 1)}, cluster.timeout_s):
            return record
    raise ConfigurationError("--offset", f"no record at {offset} (compacted away or a transaction marker)")


def _partition_holding(dlq: TopicInfo, snapshot: dict[int, OffsetRange], offset: int) -> int:
    holding = [p for p, held in sorted(snapshot.items()) if held.start <= offset < held.end]
    if len(holding) == 1 or dlq.partitions == 1:
        return holding[0] if holding else 0
    if not holding:
        raise ConfigurationError("--offset", f"no partition of {dlq.name} holds offset {offset}")
    listed = ", ".join(map(str, holding))
    raise ConfigurationError("--partition", f"offset {offset} exists in partitions {listed} of {dlq.name}; say which")


def _narrow(snapshot: dict[int, OffsetRange], record_filter: RecordFilter) -> dict[int, OffsetRange]:
    narrowed = {}
    for partition, full in snapshot.items():
        start = max(full.start, record_filter.offset_from or 0)
        end = full.end if record_filter.offset_to is None else min(full.end, record_filter.offset_to + 1)
        if record_filter.may_match_offset(partition, start) and start < end:
            narrowed[partition] = OffsetRange(start, end)
    return narrowed


def _holds(dlq: TopicInfo, partition: int, snapshot: OffsetRange) -> str:
    if len(snapshot) == 0:
        return f"partition {partition} of {dlq.name} is empty"
    return f"partition {partition} of {dlq.name} holds offsets {snapshot.start} to {snapshot.end - 1}"
