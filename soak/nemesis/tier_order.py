"""Key order through the retry tiers (``RETRY_TOPIC_KEY_ORDER``), checked as ``docs/retry-topics.md`` states it.

The runner remembers in memory which keys of a source partition have a record in a tier; later records of such a
key follow it into the tier. A restart, or a partition that moves, forgets that, and the docs promise nothing
across it. So the check is made over *stretches*: for a record r of key K (source partition ``t[p]``) that went
into a tier, and a later record r' of K on ``t[p]`` (higher offset), r' must not be first processed before r
left the tiers (processed, or dead-lettered from one: a dead-lettered record does not hold its followers) —
unless a partition assignment changed in between: of ``t[p]`` itself, or of a tier partition K's records were
written to. "In between" runs from r's first tier write to r''s first processing; the ledger's ``assigned``,
``revoked`` and ``lost`` events (any member) are the changes. A member that is killed or restarts shows up there
too: its partitions are assigned to another member (or to its successor).

Positions are the source records' (``topic, partition, offset``): a processing read from a tier names its
source in the ledger event's ``detail`` (``topic:partition:offset``); tier writes and DLQ writes are logged with
the source's coordinates.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field

from soak.ledger import Event, EventKind, Ledger
from soak.nemesis.workload import Position, Traffic

__all__ = ["KeyOrder", "judge_tier_key_order", "source_position"]

Partition = tuple[str, int]
_CHANGES = (EventKind.ASSIGNED, EventKind.REVOKED, EventKind.LOST)


def source_position(event: Event, tiers: set[str]) -> Position | None:
    """The source record an event is about: its own position, or (read from a tier) the one its detail names."""
    if event.topic is None or event.partition is None or event.offset is None:
        return None
    if event.kind == EventKind.PROCESSED and event.topic in tiers:
        topic, partition, offset = (event.detail or "").rsplit(":", 2)
        return (topic, int(partition), int(offset))
    return (event.topic, event.partition, event.offset)


@dataclass
class KeyOrder:
    """What the check saw: the constrained pairs (r in a tier, a later r' of its key, one stretch), and breaks."""

    pairs: int = 0  # pairs the guarantee covered (no assignment change between)
    excused: int = 0  # pairs out of order across an assignment change (not guaranteed)
    excused_tier_moves: int = 0  # of those, across a change of a tier partition only (the source stayed put)
    violations: list[str] = field(default_factory=list)


@dataclass
class _Facts:
    entered: dict[Position, int] = field(default_factory=dict)  # first tier write's seq
    first_ok: dict[Position, tuple[int, str]] = field(default_factory=dict)  # first processing: seq, member
    left: dict[Position, int] = field(default_factory=dict)  # first processing or DLQ write
    tier_partitions: dict[tuple[str, int, str], set[Partition]] = field(default_factory=lambda: defaultdict(set))
    changes: dict[Partition, list[int]] = field(default_factory=lambda: defaultdict(list))


def _tier_of(event: Event) -> Partition:
    """The tier partition a tier write landed in (acknowledged: ``topic:partition``) or a processing read from."""
    if event.kind == EventKind.TIER_ACKED:
        name, _, partition = (event.detail or "").rpartition(":")
        return (name, int(partition))
    return (event.topic or "", event.partition or 0)


def _facts(ledger: Ledger, traffic: Traffic, topics: set[str], tiers: set[str]) -> _Facts:
    facts = _Facts()
    kinds = (EventKind.PROCESSED, EventKind.DLQ_SENT, EventKind.TIER_SENT, EventKind.TIER_ACKED, *_CHANGES)
    for event in ledger.events(*kinds):
        if event.kind in _CHANGES:
            facts.changes[(event.topic or "", event.partition or 0)].append(event.seq)
            continue
        position = source_position(event, tiers)
        if position is None or position[0] not in topics:
            continue
        if event.kind == EventKind.TIER_SENT:
            facts.entered.setdefault(position, event.seq)
        record = traffic.acked.get(position)
        if record is not None and (event.kind == EventKind.TIER_ACKED or event.topic in tiers):
            facts.tier_partitions[(position[0], position[1], record.key)].add(_tier_of(event))
        if event.kind == EventKind.PROCESSED:
            facts.first_ok.setdefault(position, (event.seq, event.member))
        if event.kind in (EventKind.PROCESSED, EventKind.DLQ_SENT):
            facts.left.setdefault(position, event.seq)
    return facts


def _changed_between(facts: _Facts, partitions: set[Partition], low: int, high: int) -> bool:
    for partition in partitions:
        seqs = facts.changes.get(partition, [])
        if bisect.bisect_right(seqs, low) < bisect.bisect_left(seqs, high):
            return True
    return False


_NEVER = 1 << 62


def _judge_chain(found: KeyOrder, facts: _Facts, chain: tuple[str, int, str], offsets: list[int]) -> None:
    """One key of one source partition: each record that went into a tier against each later record."""
    topic, partition, key = chain
    involved_source = (topic, partition)
    involved = {involved_source, *facts.tier_partitions.get(chain, set())}
    for index, offset in enumerate(offsets):
        entered = facts.entered.get((topic, partition, offset))
        if entered is None:
            continue
        left = facts.left.get((topic, partition, offset), _NEVER)
        for later in offsets[index + 1 :]:
            processed = facts.first_ok.get((topic, partition, later))
            if processed is None:
                continue
            seq, member = processed
            low, high = min(seq, entered), max(seq, entered)
            if _changed_between(facts, involved, low, high):
                found.excused += seq < left
                found.excused_tier_moves += seq < left and not _changed_between(facts, {involved_source}, low, high)
                continue
            found.pairs += 1
            if seq < left:
                found.violations.append(
                    f"key order through the tiers: {topic}[{partition}]@{later} (key {key}) first processed by "
                    f"{member} at ledger seq {seq}, before {topic}[{partition}]@{offset}, which went into a tier "
                    f"at seq {entered}, left the tiers ({'never' if left == _NEVER else f'at seq {left}'}); no "
                    "assignment change of the key's partitions in between"
                )


def judge_tier_key_order(ledger: Ledger, traffic: Traffic, topics: list[str], tiers: list[str]) -> KeyOrder:
    """Per key and source partition, no record first processed before an earlier one still in a tier, within
    one stretch without assignment changes (see the module's docstring)."""
    facts = _facts(ledger, traffic, set(topics), set(tiers))
    chains: dict[tuple[str, int, str], list[int]] = defaultdict(list)
    for (topic, partition, offset), record in traffic.acked.items():
        if topic in topics:
            chains[(topic, partition, record.key)].append(offset)
    found = KeyOrder()
    for chain, offsets in sorted(chains.items()):
        _judge_chain(found, facts, chain, sorted(offsets))
    return found
