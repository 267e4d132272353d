"""The benchmark's commit goal: commits a second against what the runner's commit policy asks for at its rate."""

from __future__ import annotations

from typing import Any

from bench.summary import commit_goal


def runner(records_per_s: float, commits_per_s: float) -> dict[str, Any]:
    return {"records_per_s": {"median": records_per_s}, "commits_per_s": {"median": commits_per_s}}


def test_below_100000_records_a_second_the_policy_is_one_commit_a_second() -> None:
    assert commit_goal(runner(90_000, 1.0))["met"] is True
    assert commit_goal(runner(90_000, 1.0))["value"] == 1.0
    assert commit_goal(runner(90_000, 2.0))["met"] is False


def test_above_it_a_commit_per_100000_records_is_amortised() -> None:
    verdict = commit_goal(runner(220_000, 1.98))
    assert verdict["met"] is True
    assert round(verdict["value"], 2) == 0.9
    assert commit_goal(runner(220_000, 4.0))["met"] is False, "nearly twice the policy's commits"


def test_a_runner_without_commit_counts_is_not_measured() -> None:
    assert commit_goal({"records_per_s": {"median": 1.0}})["met"] is None
    assert commit_goal(None)["met"] is None
