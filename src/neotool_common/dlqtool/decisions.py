"""What a replay does with each DLQ record, decided without touching Kafka.

=============  ======================================================================================
``SKIP``       the filter does not select it; nothing is sent
``REPLAY``     a copy goes to its original topic (or ``--to``), ``dlq.*`` error headers removed and
               ``dlq.replay.count`` incremented; to its original partition when that partition exists;
               for the group that dead-lettered it only (``dlq.replay.group``) unless ``--all-groups``
               (:mod:`.targets`). It gets a new timestamp: an original one older than the target's
               retention would let the broker delete the copy before anyone read it.
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

from neotool_common.deadletter.headers import DLQ_REPLAY_COUNT, PARKED_SUFFIX, REPLAY_MANAGED_HEADERS, is_dlq_topic
from neotool_common.dlqtool.filters import RecordFilter
from neotool_common.dlqtool.records import DlqRecord, Header
from neotool_common.dlqtool.targets import ReplayTarget, TargetCatalog, route
from neotool_common.errors import ConfigurationError

__all__ = [
    "GROUP_PREFIX",
    "Action",
    "Decision",
    "ReplayPolicy",
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
    ``all_groups``    let every group reading the target process the copies, not only the one that failed
    ``max_replays``   a record whose ``dlq.replay.count`` reached this is parked (or reported), not sent
    ``park``          move such records to ``<dlq>.parked`` (created like the DLQ when missing)
    ``limit``         stop after deciding this many selected records
    ``rate``          at most this many records produced per second
    """

    dlq_topic: str
    to_topic: str | None = None
    all_groups: bool = False
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


@dataclass(frozen=True)
class Decision:
    """The fate of one record; ``target`` says where a REPLAY or PARK copy goes (or which topic a REPORT refused)."""

    action: Action
    record: DlqRecord
    target: ReplayTarget | None = None
    why: str = ""


def is_dead_letter_topic(topic: str) -> bool:
    """A DLQ or parked topic: replaying into one would hide records instead of retrying them."""
    return is_dlq_topic(topic) or topic.endswith(PARKED_SUFFIX)


def default_group(record_filter: RecordFilter, policy: ReplayPolicy) -> str:
    """``neotool-dlq-replay.<dlq>``, plus ``.f<fingerprint>`` when a filter or ``--to`` narrows the replay.

    A filtered replay keeps its own progress, so a later unfiltered replay still sees what it skipped; so does
    one with ``--all-groups``, which sends to more groups than the default replay.
    ``--limit`` is not part of the name: a limited run is the start of the same replay.
    """
    base = GROUP_PREFIX + policy.dlq_topic
    if record_filter.is_empty and policy.to_topic is None and not policy.all_groups:
        return base
    selection = f"{record_filter.fingerprint()}|to={policy.to_topic or ''}"
    if policy.all_groups:
        selection += "|all-groups"  # only then: the names of the replays from before --all-groups stay the same
    return f"{base}.f{hashlib.sha256(selection.encode()).hexdigest()[:10]}"


def decide(record: DlqRecord, record_filter: RecordFilter, policy: ReplayPolicy, catalog: TargetCatalog) -> Decision:
    if not record_filter.matches(record):
        return Decision(Action.SKIP, record)
    target = policy.to_topic or record.original_topic
    if not target:
        return Decision(Action.REPORT, record, why=record.problems[0] + "; pass --to TOPIC to replay it")
    if policy.is_forbidden_target(target):
        why = f"refusing to replay into dead-letter topic {target!r}"
        return Decision(Action.REPORT, record, ReplayTarget(target), why=why)
    if record.replay_count >= policy.max_replays:
        return _loop_guard(record, policy)
    keep_partition = policy.to_topic is None
    destination = route(record, target, catalog, all_groups=policy.all_groups, keep_partition=keep_partition)
    if destination is None:
        return Decision(Action.REPORT, record, ReplayTarget(target), why=f"target topic {target!r} does not exist")
    return Decision(Action.REPLAY, record, destination)


def replayed_headers(record: DlqRecord, target: ReplayTarget) -> list[Header]:
    """The original headers, in order, without those a replay manages (the failure's ``dlq.*`` headers, an
    earlier replay's count and group), then the replay counted and the target's own headers."""
    kept = [(name, value) for name, value in record.headers if name not in REPLAY_MANAGED_HEADERS]
    return [*kept, (DLQ_REPLAY_COUNT, str(record.replay_count + 1).encode()), *target.headers]


def _loop_guard(record: DlqRecord, policy: ReplayPolicy) -> Decision:
    why = f"replayed {record.replay_count} time(s) already (--max-replays {policy.max_replays})"
    if policy.park:
        return Decision(Action.PARK, record, ReplayTarget(policy.parked_topic), why=why)
    return Decision(Action.REPORT, record, why=why + "; not parked (--no-park)")
