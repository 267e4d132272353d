"""What a replay does with each DLQ record, decided without touching Kafka.

=============  ======================================================================================
``SKIP``       the filter does not select it; nothing is sent
``REPLAY``     a copy goes to its original topic (or ``--to``), ``dlq.*`` error headers removed and
               ``dlq.replay.count`` incremented; to its original partition when that partition exists.
               It gets a new timestamp: an original one older than the target's retention would let
               the broker delete the copy before anyone read it.
``PARK``       it was replayed ``max_replays`` times already: moved, unchanged, to ``<dlq>.parked``
``REPORT``     it cannot be replayed (no original topic, target is a dead-letter topic or missing,
               or the loop guard tripped with parking off); listed, and the exit code is 1
=============  ======================================================================================

Records skipped, parked or reported are still committed by the replay's group: its progress means
"decided", and every decision but ``SKIP`` is printed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from neotool_common.deadletter.headers import DLQ_ERROR_HEADERS, DLQ_REPLAY_COUNT, PARKED_SUFFIX, is_dlq_topic
from neotool_common.dlqtool.filters import RecordFilter
from neotool_common.dlqtool.records import DlqRecord, Header
from neotool_common.errors import ConfigurationError

__all__ = [
    "GROUP_PREFIX",
    "Action",
    "Decision",
    "ReplayPolicy",
    "TargetCatalog",
    "decide",
    "default_group",
    "is_dead_letter_topic",
    "replayed_headers",
]

GROUP_PREFIX = "neotool-dlq-replay."


class Action(StrEnum):
    SKIP = "skip"
    REPLAY = "replay"
    PARK = "park"
    REPORT = "report"


@dataclass(frozen=True)
class ReplayPolicy:
    """How a replay treats the records its filter selects.

    ``to_topic``      send every record there instead of its ``dlq.original.topic``
    ``max_replays``   a record whose ``dlq.replay.count`` reached this is parked (or reported), not sent
    ``park``          move such records to ``<dlq>.parked`` (created like the DLQ when missing)
    ``limit``         stop after deciding this many selected records
    ``rate``          at most this many records produced per second
    """

    dlq_topic: str
    to_topic: str | None = None
    max_replays: int = 3
    park: bool = True
    limit: int | None = None
    rate: float | None = None

    def __post_init__(self) -> None:
        if self.max_replays < 1:
            raise ConfigurationError("--max-replays", "must be 1 or more")
        if self.limit is not None and self.limit < 1:
            raise ConfigurationError("--limit", "must be 1 or more")
        if self.rate is not None and self.rate <= 0:
            raise ConfigurationError("--rate", "must be more than 0 records per second")
        if self.to_topic is not None and self.is_forbidden_target(self.to_topic):
            raise ConfigurationError("--to", f"refusing to replay into dead-letter topic {self.to_topic!r}")

    @property
    def parked_topic(self) -> str:
        return self.dlq_topic + PARKED_SUFFIX

    def is_forbidden_target(self, topic: str) -> bool:
        return topic == self.dlq_topic or is_dead_letter_topic(topic)


class TargetCatalog(Protocol):
    """Partition count of a topic, ``None`` when it does not exist (cached by implementations)."""

    def partitions(self, topic: str) -> int | None: ...


@dataclass(frozen=True)
class Decision:
    """The fate of one record; ``target``/``partition`` say where a REPLAY or PARK copy goes."""

    action: Action
    record: DlqRecord
    target: str | None = None
    partition: int | None = None
    why: str = ""


def is_dead_letter_topic(topic: str) -> bool:
    """A DLQ or parked topic: replaying into one would hide records instead of retrying them."""
    return is_dlq_topic(topic) or topic.endswith(PARKED_SUFFIX)


def default_group(record_filter: RecordFilter, policy: ReplayPolicy) -> str:
    """``neotool-dlq-replay.<dlq>``, plus ``.f<fingerprint>`` when a filter or ``--to`` narrows the replay.

    A filtered replay keeps its own progress, so a later unfiltered replay still sees what it skipped.
    ``--limit`` is not part of the name: a limited run is the start of the same replay.
    """
    base = GROUP_PREFIX + policy.dlq_topic
    if record_filter.is_empty and policy.to_topic is None:
        return base
    selection = f"{record_filter.fingerprint()}|to={policy.to_topic or ''}"
    return f"{base}.f{hashlib.sha256(selection.encode()).hexdigest()[:10]}"


def decide(record: DlqRecord, record_filter: RecordFilter, policy: ReplayPolicy, catalog: TargetCatalog) -> Decision:
    if not record_filter.matches(record):
        return Decision(Action.SKIP, record)
    target = policy.to_topic or record.original_topic
    if not target:
        return Decision(Action.REPORT, record, why=record.problems[0] + "; pass --to TOPIC to replay it")
    if policy.is_forbidden_target(target):
        return Decision(Action.REPORT, record, target, why=f"refusing to replay into dead-letter topic {target!r}")
    if record.replay_count >= policy.max_replays:
        return _loop_guard(record, policy)
    partitions = catalog.partitions(target)
    if partitions is None:
        return Decision(Action.REPORT, record, target, why=f"target topic {target!r} does not exist")
    return Decision(Action.REPLAY, record, target, _original_partition(record, policy, partitions))


def replayed_headers(record: DlqRecord) -> list[Header]:
    """The original headers, in order, without the failure's ``dlq.*`` headers, with the replay counted."""
    kept = [(name, value) for name, value in record.headers if not _is_replay_managed(name)]
    return [*kept, (DLQ_REPLAY_COUNT, str(record.replay_count + 1).encode())]


def _loop_guard(record: DlqRecord, policy: ReplayPolicy) -> Decision:
    why = f"replayed {record.replay_count} time(s) already (--max-replays {policy.max_replays})"
    if policy.park:
        return Decision(Action.PARK, record, policy.parked_topic, why=why)
    return Decision(Action.REPORT, record, why=why + "; not parked (--no-park)")


def _original_partition(record: DlqRecord, policy: ReplayPolicy, partitions: int) -> int | None:
    """Back to the partition it came from, so per-key order is kept; else the key decides (murmur2)."""
    if policy.to_topic is not None or record.original_partition is None:
        return None
    return record.original_partition if 0 <= record.original_partition < partitions else None


def _is_replay_managed(name: str) -> bool:
    return name in DLQ_ERROR_HEADERS or name == DLQ_REPLAY_COUNT
