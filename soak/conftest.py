"""pytest wiring of the soak suite: the profile, the quick subset, the brokers, and the report.

``--soak-profile=quick`` (the default, what ``make test`` runs) selects the scenarios marked ``soak_quick``
at small sizes and deselects the others; ``--soak-profile=full`` (``make soak``) runs every scenario at full
size; ``--soak-report=PATH`` writes the report table there (``make soak``: ``soak/results/latest.md``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from neotool_common.testing.kafka import LocalKafkaCluster
from soak.faults import FaultSchedule
from soak.ledger import Ledger
from soak.nemesis.schedule import MAX_MEMBERS
from soak.report import Report, Row
from soak.scenario import Scale, ScenarioRun

_REPORT = pytest.StashKey[Report]()
_CALL_FAILED = pytest.StashKey[bool]()
_SESSION_STARTED = time.monotonic()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak-profile",
        choices=("quick", "full"),
        default="quick",
        help="soak suite: quick = the make-test subset at small sizes; full = every scenario (make soak)",
    )
    parser.addoption("--soak-report", default="", help="write the soak report table (markdown) to this file")
    parser.addoption("--nemesis-seed", type=int, default=None, help="nemesis: run (replay) this seed only")
    parser.addoption("--nemesis-protocol", default=None, help="nemesis: classic-eager, classic-cooperative or consumer")
    parser.addoption("--nemesis-mode", default=None, help="nemesis: sequential, key, async, batch or tiers-key-order")
    parser.addoption("--nemesis-brokers", type=int, default=None, choices=(1, 3), help="nemesis: 1 or 3 nodes")
    parser.addoption("--soak-seed", type=int, default=20_261_122, help="seed of the soak fault schedules")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak_quick: a soak scenario that also runs, scaled down, in make test")
    config.addinivalue_line("markers", "scenario(number, title): the soak scenario a test runs (report row)")
    config.stash[_REPORT] = Report(config.getoption("--soak-profile"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak-profile") == "full":
        return
    here = Path(__file__).parent
    unselected = [i for i in items if i.path.is_relative_to(here) and i.get_closest_marker("soak_quick") is None]
    if unselected:
        config.hook.pytest_deselected(items=unselected)
        items[:] = [i for i in items if i not in set(unselected)]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    report = config.stash[_REPORT]
    if not report.rows and not report.nemesis:
        return
    terminalreporter.section(f"soak report ({report.profile})")
    if report.rows:
        terminalreporter.write_line(report.table())
    if report.nemesis:
        terminalreporter.write_line(report.nemesis_table())
    target = config.getoption("--soak-report")
    if target:
        path = Path(target)
        report.write(path, time.monotonic() - _SESSION_STARTED)
        terminalreporter.write_line(f"written to {path}")


@pytest.fixture(scope="session")
def scale(pytestconfig: pytest.Config) -> Scale:
    return Scale(pytestconfig.getoption("--soak-profile"))


@pytest.fixture
def schedule(pytestconfig: pytest.Config) -> FaultSchedule:
    """The fault schedule of one scenario: random points drawn from ``--soak-seed``."""
    return FaultSchedule(pytestconfig.getoption("--soak-seed"))


@pytest.fixture
def scenario(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScenarioRun]:
    marker = request.node.get_closest_marker("scenario")
    assert marker is not None, "every soak test names its scenario: @pytest.mark.scenario(number, title)"
    number, title = marker.args
    variant = getattr(getattr(request.node, "callspec", None), "id", "")
    name = f"{number}. {title}" + (f" [{variant}]" if variant else "")
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    run = ScenarioRun(name, tmp_path, ledger, f"soak-{number}-{uuid.uuid4().hex[:8]}")
    try:
        yield run
    finally:
        ledger.close()
        failed = request.node.stash.get(_CALL_FAILED, True)
        own_table = marker.kwargs.get("own_table", False)  # the nemesis writes its own rows (NemesisRow)
        if not own_table:
            _add_row(request, name, run, failed)


def _add_row(request: pytest.FixtureRequest, name: str, run: ScenarioRun, failed: bool) -> None:
    verdict = run.verdict
    request.config.stash[_REPORT].add(
        Row(
            scenario=name,
            records=verdict.records if verdict else 0,
            lost=len(verdict.lost) if verdict else 0,
            duplicates=verdict.duplicates if verdict else 0,
            dlq=verdict.dead if verdict else 0,
            seconds=time.monotonic() - run.started,
            result="FAIL" if failed else "pass",
            notes="; ".join(f"{k} {v}" for k, v in run.figures.items()),
        )
    )


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Report:
    """The session's report (the nemesis adds its own rows)."""
    return request.config.stash[_REPORT]


@pytest.fixture(scope="session")
def cluster3() -> Iterator[LocalKafkaCluster]:
    """A three-node KRaft cluster the soak suite owns: scenario 11 stops and kills its nodes."""
    with LocalKafkaCluster(3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def kafka_proxied() -> Iterator[LocalKafkaCluster]:
    """A single node with a listener for each proxy the nemesis puts between a member and the broker (its
    network cuts): as many as members run at once, and one more for a member joining while another leaves."""
    with LocalKafkaCluster(1, proxied_listeners=MAX_MEMBERS + 1) as cluster:
        yield cluster
