"""The key-order check through the retry tiers (``soak.nemesis.tier_order``) on hand-written ledgers: no broker.

Key K has records at offsets 0 and 1 of ``t[0]``; offset 0 goes into the 300 ms tier. Offset 1 first processed
before offset 0 left the tiers breaks the guarantee only when no assignment of the key's partitions (the source
partition, the tier partition it was written to) changed in between: the waiting keys live in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from soak.ledger import EventKind, Ledger
from soak.nemesis.check import judge_safety
from soak.nemesis.tier_order import judge_tier_key_order
from soak.nemesis.workload import Record, Traffic

SOURCE = "t"
TIER = "t.retry.g.300ms"
TIER_PARTITION = 2  # the producer's partitioner picks it by key, whatever the source partition


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.sqlite3")


def _traffic() -> Traffic:
    traffic = Traffic()
    for offset in (0, 1):
        traffic.acked[(SOURCE, 0, offset)] = Record("good", "k0001", f"r{offset}", b"{}", 0)
    return traffic


def _into_tier(ledger: Ledger, member: str, offset: int) -> None:
    ledger.record(member, EventKind.TIER_SENT, SOURCE, 0, offset, f"r{offset}", f"{TIER} from {SOURCE}:0:{offset}")
    ledger.record(member, EventKind.TIER_ACKED, SOURCE, 0, offset, f"r{offset}", f"{TIER}:{TIER_PARTITION}")


def _from_tier(ledger: Ledger, member: str, offset: int, tier_offset: int) -> None:
    ledger.record_processed(member, TIER, TIER_PARTITION, tier_offset, f"r{offset}", f"{SOURCE}:0:{offset}")


def _hand_over(ledger: Ledger, topic: str, partition: int) -> None:
    ledger.record("a", EventKind.REVOKED, topic, partition, -1)
    ledger.record("b", EventKind.ASSIGNED, topic, partition, -1)


def _start(ledger: Ledger) -> None:
    ledger.record("a", EventKind.ASSIGNED, SOURCE, 0, -1)
    ledger.record("a", EventKind.ASSIGNED, TIER, TIER_PARTITION, -1)


def _overtaken(ledger: Ledger, between: Callable[[], None] = lambda: None) -> None:
    """Offset 0 into the tier; ``between``; offset 1 processed from the source (by b if a handed over, else a);
    then offset 0 processed from the tier."""
    _start(ledger)
    _into_tier(ledger, "a", 0)
    between()
    owner = "b" if ledger.count(EventKind.ASSIGNED, member="b") else "a"
    ledger.record_processed(owner, SOURCE, 0, 1, "r1")
    _from_tier(ledger, "a", 0, tier_offset=0)


@pytest.mark.soak_quick
def test_a_later_record_processed_before_an_earlier_one_left_the_tier_within_one_owner_is_a_violation(
    ledger: Ledger,
) -> None:
    _overtaken(ledger)

    found = judge_tier_key_order(ledger, _traffic(), [SOURCE], [TIER])

    assert (found.pairs, found.excused, len(found.violations)) == (1, 0, 1)
    assert "t[0]@1 (key k0001) first processed by a" in found.violations[0]
    assert "before t[0]@0, which went into a tier" in found.violations[0]


@pytest.mark.soak_quick
@pytest.mark.parametrize("moved", [(SOURCE, 0), (TIER, TIER_PARTITION)], ids=["source-partition", "tier-partition"])
def test_the_same_overtaking_across_an_assignment_change_of_the_keys_partitions_is_excused(
    ledger: Ledger, moved: tuple[str, int]
) -> None:
    _overtaken(ledger, between=lambda: _hand_over(ledger, *moved))

    found = judge_tier_key_order(ledger, _traffic(), [SOURCE], [TIER])

    assert (found.pairs, found.excused, found.violations) == (0, 1, [])
    assert found.excused_tier_moves == (moved[0] == TIER)


@pytest.mark.soak_quick
def test_a_change_of_an_unrelated_partition_excuses_nothing(ledger: Ledger) -> None:
    _overtaken(ledger, between=lambda: _hand_over(ledger, SOURCE, 1))

    assert len(judge_tier_key_order(ledger, _traffic(), [SOURCE], [TIER]).violations) == 1


@pytest.mark.soak_quick
def test_a_follower_processed_after_the_record_it_follows_holds_the_order(ledger: Ledger) -> None:
    _start(ledger)
    _into_tier(ledger, "a", 0)
    _into_tier(ledger, "a", 1)  # follows key k0001 into the tier, untried
    _from_tier(ledger, "a", 0, tier_offset=0)
    _from_tier(ledger, "a", 1, tier_offset=1)

    found = judge_tier_key_order(ledger, _traffic(), [SOURCE], [TIER])

    assert (found.pairs, found.excused, found.violations) == (1, 0, [])


@pytest.mark.soak_quick
@pytest.mark.parametrize(("later_first", "broken"), [(False, 0), (True, 1)], ids=["after-the-dlq", "before-the-dlq"])
def test_a_record_dead_lettered_from_the_last_tier_holds_its_followers_until_then(
    ledger: Ledger, later_first: bool, broken: int
) -> None:
    _start(ledger)
    _into_tier(ledger, "a", 0)
    if later_first:
        ledger.record_processed("a", SOURCE, 0, 1, "r1")
    ledger.record("a", EventKind.DLQ_SENT, SOURCE, 0, 0, "r0")  # retries_exhausted, from the tier
    if not later_first:
        ledger.record_processed("a", SOURCE, 0, 1, "r1")

    assert len(judge_tier_key_order(ledger, _traffic(), [SOURCE], [TIER]).violations) == broken


@pytest.mark.soak_quick
def test_judge_safety_reports_the_break_and_counts_a_tier_processing_for_its_source_record(ledger: Ledger) -> None:
    _overtaken(ledger)

    found = judge_safety(_traffic(), ledger, [], [SOURCE], partition_order=False, in_flight_limit=1, tiers=[TIER])

    assert (found.lost, found.processed, found.duplicates, found.tier_hops) == (0, 2, 0, 1)
    assert [v for v in found.violations if v.startswith("key order through the tiers")] == found.violations
    assert len(found.violations) == 1


@pytest.mark.soak_quick
def test_a_tier_write_no_commit_covered_bounds_one_more_processing_of_its_record(ledger: Ledger) -> None:
    # a writes offset 0 to the tier and is gone before committing it; b, the next owner, reads it again and
    # processes it (the failure is over), commits; c processes the tier copy, commits: two processings, one
    # duplicate, which only a's uncovered tier write explains
    ledger.record("a", EventKind.ASSIGNED, SOURCE, 0, -1)
    _into_tier(ledger, "a", 0)
    ledger.record("b", EventKind.ASSIGNED, SOURCE, 0, -1)
    ledger.record_processed("b", SOURCE, 0, 0, "r0")
    ledger.record_processed("b", SOURCE, 0, 1, "r1")
    ledger.record("b", EventKind.COMMIT_OK, SOURCE, 0, 2)
    ledger.record("c", EventKind.ASSIGNED, TIER, TIER_PARTITION, -1)
    _from_tier(ledger, "c", 0, tier_offset=0)
    ledger.record("c", EventKind.COMMIT_OK, TIER, TIER_PARTITION, 1)

    found = judge_safety(_traffic(), ledger, [], [SOURCE], partition_order=False, in_flight_limit=1, tiers=[TIER])

    assert (found.duplicates, found.duplicate_bound) == (1, 1)
    assert found.violations == []
