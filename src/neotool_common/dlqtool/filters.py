"""Which DLQ records a command works on: one :class:`RecordFilter`, shared by list, stats and replay.

A filter is a selection, not a position: ``--limit`` is not part of it (a replay of ``--limit 10`` and a
later unlimited replay are the same replay, continued). :meth:`RecordFilter.fingerprint` names a
selection so a filtered replay keeps its progress apart from the unfiltered one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson

from neotool_common.batches.manifest import PartitionSpan
from neotool_common.deadletter.headers import DlqReason
from neotool_common.dlqtool.records import DlqRecord, parse_timestamp
from neotool_common.errors import ConfigurationError

__all__ = ["RecordFilter", "TimeBound", "parse_time_bound", "select"]

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class TimeBound:
    """A failure-time bound as typed (``2h``, ``2024-05-01T03:00Z``) and the instant it meant for this run.

    ``spec`` is what identifies a filtered replay: ``--since 2h`` run twice an hour apart is the same replay.
    """

    spec: str
    moment: datetime


def parse_time_bound(text: str, now: datetime, option: str = "--since") -> TimeBound:
    """``30m``/``2h``/``1d``/``1w`` ago, or an ISO 8601 date or time (UTC when no zone is given)."""
    relative = _RELATIVE.match(text.strip())
    if relative is not None:
        seconds = int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)]
        return TimeBound(spec=f"{seconds}s-ago", moment=now - timedelta(seconds=seconds))
    moment = parse_timestamp(text)
    if moment is None:
        raise ConfigurationError(option, f"{text!r} is neither a duration like 30m, 2h, 1d nor an ISO 8601 time")
    return TimeBound(spec=moment.isoformat(), moment=moment)


@dataclass(frozen=True)
class RecordFilter:
    """Records matching every given criterion; an empty criterion matches all. Offsets are inclusive.

    =====================  ==========================================================================
    ``reasons``            ``dlq.reason`` is one of these
    ``exception_types``    ``dlq.exception.type`` equals one, or its last dotted part does (``Timeout``)
    ``record_ids``         the record id (key, else envelope ``record_id``) is one of these
    ``since``/``until``    ``dlq.failed_at`` within the bounds (records without a failure time never match)
    ``partitions``         the DLQ partition is one of these
    ``offset_from``/``_to``  the DLQ offset is within the bounds
    ``batch_ids``          the copy's original position is in the batch's manifest (``batch_spans``), or its
                           envelope's ``batch_id`` is one of these (a record without a manifest, or replayed)
    =====================  ==========================================================================
    """

    reasons: frozenset[str] = frozenset()
    exception_types: frozenset[str] = frozenset()
    record_ids: frozenset[str] = frozenset()
    since: TimeBound | None = None
    until: TimeBound | None = None
    partitions: frozenset[int] = frozenset()
    offset_from: int | None = None
    offset_to: int | None = None
    batch_ids: frozenset[str] = frozenset()
    batch_spans: tuple[tuple[str, PartitionSpan], ...] = ()
    _short_types: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = sorted(self.reasons - {reason.value for reason in DlqReason})
        if unknown:
            choices = ", ".join(reason.value for reason in DlqReason)
            raise ConfigurationError("--reason", f"{', '.join(unknown)} is not one of {choices}")
        if any(p < 0 for p in self.partitions):
            raise ConfigurationError("--partition", "must be 0 or more")
        for option, offset in (("--offset-from", self.offset_from), ("--offset-to", self.offset_to)):
            if offset is not None and offset < 0:
                raise ConfigurationError(option, "must be 0 or more")
        if self.offset_from is not None and self.offset_to is not None and self.offset_from > self.offset_to:
            raise ConfigurationError("--offset-from", f"{self.offset_from} is after --offset-to {self.offset_to}")
        if self.since is not None and self.until is not None and self.since.moment > self.until.moment:
            raise ConfigurationError("--since", "is later than --until")
        object.__setattr__(self, "_short_types", frozenset(t for t in self.exception_types if "." not in t))

    @property
    def is_empty(self) -> bool:
        return self == RecordFilter()

    def matches(self, record: DlqRecord) -> bool:
        return (
            self._in_range(record)
            and (not self.reasons or record.reason in self.reasons)
            and (not self.exception_types or self._type_matches(record.exception_type))
            and (not self.record_ids or record.record_id in self.record_ids)
            and self._failed_in_window(record)
            and (not self.batch_ids or self._in_batch(record))
        )

    def _in_batch(self, record: DlqRecord) -> bool:
        topic, partition, offset = record.original_topic, record.original_partition, record.original_offset
        if offset is not None and any(
            t == topic and s.partition == partition and s.holds(offset) for t, s in self.batch_spans
        ):
            return True
        return _envelope_batch_id(record.value) in self.batch_ids

    def may_match_offset(self, partition: int, offset: int) -> bool:
        """False when no record at this position can match: lets readers skip whole partitions and ranges."""
        return (not self.partitions or partition in self.partitions) and (
            (self.offset_from is None or offset >= self.offset_from)
            and (self.offset_to is None or offset <= self.offset_to)
        )

    def fingerprint(self) -> str:
        """Ten hex digits naming this selection; equal filters (as typed) give equal fingerprints."""
        canonical = json.dumps(self._canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:10]

    def to_args(self) -> list[str]:
        """Command-line options that select the same records (times as typed, for copy-paste)."""
        args: list[str] = []
        args += [arg for reason in sorted(self.reasons) for arg in ("--reason", reason)]
        args += [arg for name in sorted(self.exception_types) for arg in ("--exception-type", name)]
        args += [arg for record_id in sorted(self.record_ids) for arg in ("--record-id", record_id)]
        args += [arg for p in sorted(self.partitions) for arg in ("--partition", str(p))]
        args += [arg for batch_id in sorted(self.batch_ids) for arg in ("--batch-id", batch_id)]
        for option, bound in (("--since", self.since), ("--until", self.until)):
            if bound is not None:
                args += [option, _spec_as_typed(bound.spec)]
        for option, offset in (("--offset-from", self.offset_from), ("--offset-to", self.offset_to)):
            if offset is not None:
                args += [option, str(offset)]
        return args

    def _in_range(self, record: DlqRecord) -> bool:
        return self.may_match_offset(record.partition, record.offset)

    def _type_matches(self, exception_type: str | None) -> bool:
        if exception_type is None:
            return False
        return exception_type in self.exception_types or exception_type.rpartition(".")[2] in self._short_types

    def _failed_in_window(self, record: DlqRecord) -> bool:
        if self.since is None and self.until is None:
            return True
        failed_at = record.failed_at_time
        if failed_at is None:
            return False
        return (self.since is None or failed_at >= self.since.moment) and (
            self.until is None or failed_at <= self.until.moment
        )

    def _canonical(self) -> dict[str, object]:
        return {
            "reasons": sorted(self.reasons),
            "exception_types": sorted(self.exception_types),
            "record_ids": sorted(self.record_ids),
            "since": self.since.spec if self.since else None,
            "until": self.until.spec if self.until else None,
            "partitions": sorted(self.partitions),
            "offset_from": self.offset_from,
            "offset_to": self.offset_to,
            **({"batch_ids": sorted(self.batch_ids)} if self.batch_ids else {}),
        }


def select(records: Iterable[DlqRecord], record_filter: RecordFilter, limit: int | None = None) -> Iterator[DlqRecord]:
    """The records ``record_filter`` matches, at most ``limit`` of them, in the order given."""
    if limit is not None and limit <= 0:
        return
    taken = 0
    for record in records:
        if record_filter.matches(record):
            yield record
            taken += 1
            if limit is not None and taken >= limit:
                return


def _envelope_batch_id(value: bytes | None) -> str | None:
    try:
        envelope = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    batch_id = envelope.get("batch_id") if isinstance(envelope, dict) else None
    return batch_id if isinstance(batch_id, str) else None


def _spec_as_typed(spec: str) -> str:
    if spec.endswith("s-ago"):
        seconds = int(spec.removesuffix("s-ago"))
        for unit in ("w", "d", "h", "m"):
            if seconds % _UNIT_SECONDS[unit] == 0:
                return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
        return f"{seconds}s"
    return spec
