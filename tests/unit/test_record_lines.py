"""LOG_RECORD_WARNINGS_PER_S: the per-record WARNING lines are capped each second, and the rest are counted."""

from __future__ import annotations

import json

from neotool_common.observability.line_budget import LineBudget
from neotool_common.testing.harness import running, wait_until
from neotool_common.testing.logs import capture_logs
from tests.unit.test_runner_loop import Recorder

HELD_BACK = "more records failed than are logged one by one; counted here by kind (LOG_RECORD_WARNINGS_PER_S)"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def budget(per_second: int) -> tuple[LineBudget, Clock, list[dict[str, int]]]:
    clock, summaries = Clock(), []
    return LineBudget(per_second, clock, lambda held, _window: summaries.append(held)), clock, summaries


def test_the_first_lines_of_each_second_are_written_and_the_rest_counted_by_kind_once_the_second_is_over() -> None:
    lines, clock, summaries = budget(3)
    allowed = [lines.allow("dead-lettered: a" if i % 2 else "dead-lettered: b") for i in range(10)]
    assert allowed == [True] * 3 + [False] * 7
    lines.tick(clock.now + 0.5)
    assert summaries == [], "the second is not over"
    clock.now += 1.0
    lines.tick(clock.now)
    assert summaries == [{"dead-lettered: a": 4, "dead-lettered: b": 3}]
    assert [lines.allow("x") for _ in range(4)] == [True, True, True, False], "a new second, a new allowance"
    lines.tick(clock.now)
    assert len(summaries) == 1, "this second's held-back line waits for its end ..."
    lines.tick(clock.now, final=True)
    assert summaries[-1] == {"x": 1}, "... or for the runner's stop"


def test_nothing_held_back_writes_no_summary_and_0_writes_every_line() -> None:
    lines, clock, summaries = budget(5)
    assert all(lines.allow("x") for _ in range(5))
    clock.now += 5
    lines.tick(clock.now, final=True)
    assert summaries == []
    every, _, none = budget(0)
    assert all(every.allow("x") for _ in range(10_000))
    every.tick(1e9, final=True)
    assert none == []


def bad_values(count: int) -> list[bytes]:
    return [json.dumps({"record_id": f"r-{i}", "payload": {}}).encode() for i in range(count)]  # no batch_id


def test_a_poison_storm_writes_a_few_lines_a_second_and_counts_every_other_dead_letter() -> None:
    """300 invalid records: every one in the DLQ; every one either has its line or is counted in a summary."""
    runner = Recorder(
        {0: bad_values(300)}, CIRCUIT_MAX_CONSECUTIVE_DLQ="0", CIRCUIT_MAX_DLQ_RATIO="1", LOG_RECORD_WARNINGS_PER_S="4"
    )
    with capture_logs() as events, running(runner):
        wait_until(lambda: runner.consumer.committed == {0: 300}, what="the commit past every dead-letter")
    assert len(runner.producer.produced) == 300
    lines = [e for e in events if e["event"] == "dead-lettering record"]
    summaries = [e for e in events if e["event"] == HELD_BACK]
    assert lines, "the first ones are written in full"
    assert len(lines) < 300
    reason = lines[0]["reason"]
    assert all(s["not_logged"] == {f"dead-lettered: {reason}": s["records"]} for s in summaries)
    assert len(lines) + sum(s["records"] for s in summaries) == 300, "the stop writes the last summary"
