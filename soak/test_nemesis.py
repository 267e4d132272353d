"""Scenario 14, the nemesis: seeded schedules of overlapping faults, then safety and liveness (soak/README.md).

``make test`` (profile quick) runs the three fixed seeds of :data:`QUICK_CASES` on the single broker;
``make soak`` (profile full) runs them and the 34 seeds of :data:`FULL_CASES`: 30 across the three group
protocols, the four throughput modes and, every fifth seed, the 3-node cluster; then 4 of the retry tiers with
key order (``tiers-key-order``), each protocol on one node and one on three. ``--nemesis-seed=N`` runs only seed N
(with its protocol, mode and brokers unless ``--nemesis-protocol``, ``--nemesis-mode``, ``--nemesis-brokers``
say otherwise): every failure prints the command that replays it.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from neotool_common.testing.kafka import KafkaEndpoint
from soak.invariants import Verdict
from soak.nemesis.run import MODES, PROTOCOLS, QUICK, Case, run_case
from soak.nemesis.schedule import describe
from soak.report import NemesisRow, Report
from soak.scenario import ScenarioRun

TIERS = "tiers-key-order"
QUICK_CASES = [
    Case(5, "classic-cooperative", "key", size=QUICK),
    Case(2, "consumer", "sequential", size=QUICK),
    Case(7, "classic-eager", TIERS, size=QUICK),
]
FULL_CASES = [
    Case(100 + i, list(PROTOCOLS)[i % 3], list(MODES)[(i // 3) % 4], brokers=3 if i % 5 == 4 else 1, cuts=i % 5 != 4)
    for i in range(30)
] + [  # the retry tiers with key order: every protocol on one node (with cuts), and one seed on three
    Case(130 + i, list(PROTOCOLS)[i % 3], TIERS, brokers=3 if i == 3 else 1, cuts=i != 3) for i in range(4)
]  # the single-node ones with network cuts (their broker has a listener for each member's proxy)


def _cases(config: pytest.Config) -> list[pytest.param]:  # type: ignore[valid-type]
    seed = config.getoption("--nemesis-seed")
    if seed is None:
        return [pytest.param(c, id=c.id, marks=pytest.mark.soak_quick) for c in QUICK_CASES] + [
            pytest.param(c, id=c.id) for c in FULL_CASES
        ]
    known = {c.seed: c for c in QUICK_CASES + FULL_CASES}
    case = known.get(seed, Case(seed, "classic-cooperative", "sequential"))
    case = dataclasses.replace(
        case,
        protocol=config.getoption("--nemesis-protocol") or case.protocol,
        mode=config.getoption("--nemesis-mode") or case.mode,
        brokers=config.getoption("--nemesis-brokers") or case.brokers,
    )
    case = dataclasses.replace(case, cuts=case.cuts and case.brokers == 1)
    assert case.protocol in PROTOCOLS, f"--nemesis-protocol: one of {', '.join(PROTOCOLS)}"
    assert case.mode in MODES, f"--nemesis-mode: one of {', '.join(MODES)}"
    return [pytest.param(case, id=case.id, marks=pytest.mark.soak_quick)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        metafunc.parametrize("case", _cases(metafunc.config))


@pytest.mark.scenario(14, "nemesis", own_table=True)
@pytest.mark.timeout(900)
def test_nemesis_loses_nothing_and_drains_after_the_last_fault(
    case: Case, request: pytest.FixtureRequest, scenario: ScenarioRun, report: Report
) -> None:
    single = "kafka_proxied" if case.cuts else "kafka"
    endpoint: KafkaEndpoint = request.getfixturevalue("cluster3" if case.brokers > 1 else single)
    outcome = run_case(case, endpoint, scenario)
    found = outcome.findings
    report.nemesis.append(
        NemesisRow(
            seed=case.seed,
            protocol=case.protocol,
            mode=case.mode,
            brokers=case.brokers,
            faults=str(scenario.figures.get("faults", "")),
            records=found.records,
            lost=found.lost,
            duplicates=found.duplicates,
            duplicate_bound=found.duplicate_bound,
            dead=found.dead,
            stuck=len(outcome.stuck),
            drain_s=outcome.drain_s,
            seconds=time.monotonic() - scenario.started,
            result="FAIL" if found.violations else "pass",
        )
    )
    scenario.finish(
        Verdict(
            records=found.records,
            processed=found.processed,
            dead=found.dead,
            lost={str(i) for i in range(found.lost)},
            duplicates=found.duplicates,
            dlq_copies=found.dlq_copies,
            valid_in_dlq=set(),
            poison_in_o=set(),
            uncommitted_processings=found.duplicate_bound,
            uncommitted_dead_letters=found.dlq_copy_bound,
            failed_dead_letter_writes=0,
            violations=found.violations,
        )
    )
    assert not found.violations, (
        f"nemesis invariants violated: seed {case.seed}, protocol {case.protocol}, mode {case.mode}, "
        f"{case.brokers} node(s)\nschedule:\n{describe(outcome.schedule)}\nwhat happened:\n  "
        + "\n  ".join(outcome.nemesis_log)
        + "\nviolations:\n  "
        + "\n  ".join(found.violations)
        + f"\nreplay: {case.replay()}"
    )
