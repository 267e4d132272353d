"""The duplicate bound's arithmetic (``soak.invariants.handoff_windows``) on hand-written ledgers: no broker.

Seed 117 (``consumer``, ``key``) went 4 over the bound the windows gave before records in flight at a hand-over
were counted: a member frozen (SIGSTOP) with 4 records inside its handler lost its partition, completed the 4
after the ``lost`` event, got the partition back and committed past them, which emptied its window.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from soak.invariants import handoff_windows
from soak.ledger import EventKind, Ledger
from soak.nemesis.check import Findings, _judge_duplicates

TOPIC = "t"


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.sqlite3")


def _lose_with_records_in_flight(ledger: Ledger, in_flight: int) -> int:
    """Member a processes 0-3 (commits 2), loses the partition, completes ``in_flight`` records after that,
    gets the partition back and commits past all of them. Returns the seq of the ``lost`` event."""
    ledger.record("a", EventKind.ASSIGNED, TOPIC, 0, -1)
    for offset in range(4):
        ledger.record_processed("a", TOPIC, 0, offset, f"r{offset}")
    ledger.record("a", EventKind.COMMIT_OK, TOPIC, 0, 2)
    ledger.record("b", EventKind.ASSIGNED, TOPIC, 0, -1)
    for offset in range(2, 4 + in_flight):
        ledger.record_processed("b", TOPIC, 0, offset, f"r{offset}")
    ledger.record("a", EventKind.LOST, TOPIC, 0, -1)
    lost = ledger.last_seq()
    for offset in range(4, 4 + in_flight):  # inside a's handler when it learnt of the loss
        ledger.record_processed("a", TOPIC, 0, offset, f"r{offset}")
    ledger.record("b", EventKind.REVOKED, TOPIC, 0, -1)
    ledger.record("a", EventKind.ASSIGNED, TOPIC, 0, -1)
    ledger.record("a", EventKind.COMMIT_OK, TOPIC, 0, 20)
    return lost


@pytest.mark.soak_quick
def test_records_completed_after_a_hand_over_count_even_when_a_later_commit_covers_them(ledger: Ledger) -> None:
    lost = _lose_with_records_in_flight(ledger, in_flight=3)

    windows = handoff_windows(ledger, TOPIC)

    # a's tenure left 2 and 3 uncommitted; b's left 2-6 (no commit at all); a completed 4-6 after the loss
    assert (windows.processings, dict(windows.in_flight)) == (2 + 5, {("a", 0, lost): 3})
    assert windows.bound == 10


@pytest.mark.soak_quick
def test_more_completions_after_a_hand_over_than_the_mode_has_in_the_handler_is_a_violation(ledger: Ledger) -> None:
    _lose_with_records_in_flight(ledger, in_flight=3)
    deliveries = Counter({(TOPIC, 0, e.offset or 0): 0 for e in ledger.events(EventKind.PROCESSED)})
    for event in ledger.events(EventKind.PROCESSED):
        deliveries[(TOPIC, 0, event.offset or 0)] += 1

    within, beyond = Findings(), Findings()
    _judge_duplicates(within, ledger, [TOPIC], deliveries, Counter(), in_flight_limit=3)
    _judge_duplicates(beyond, ledger, [TOPIC], deliveries, Counter(), in_flight_limit=2)

    assert (within.duplicates, within.duplicate_bound, within.violations) == (5, 10, [])
    assert len(beyond.violations) == 1
    assert "completed 3 records of t[0] after handing it over" in beyond.violations[0]
