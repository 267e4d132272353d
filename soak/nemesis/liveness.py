"""The end of a nemesis run: liveness (committed to the end, gauges at rest) and every member's exit."""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from neotool_common.testing.harness import committed_offsets
from soak.faults import Fleet, Member, metric, scrape_metrics
from soak.nemesis.check import Findings
from soak.nemesis.schedule import Fault, Nemesis
from soak.steps import end_offsets

__all__ = ["Outcome", "await_liveness", "stop_and_check_exits"]


@dataclass
class Outcome:
    findings: Findings
    schedule: list[Fault]
    nemesis_log: list[str] = field(default_factory=list)
    stuck: dict[str, tuple[int, int]] = field(default_factory=dict)
    aborted: list[str] = field(default_factory=list)  # members that ended in abort() (SIGABRT, exit -6)
    drain_s: float = 0.0


def _abort_reason(tail: str) -> str:
    """The assertion that aborted a member, from the end of its log (librdkafka prints it to stderr)."""
    failed = [line.strip() for line in tail.splitlines() if "Assertion" in line or "assert" in line]
    return failed[-1] if failed else "abort() without an assertion in its log"


def _stuck(bootstrap: str, group: str, topics: list[str]) -> dict[str, tuple[int, int]]:
    """``topic[p]`` -> (committed, end) for every partition whose committed offset is not its end offset."""
    stuck = {}
    for topic in topics:
        ends = end_offsets(bootstrap, topic)
        committed = committed_offsets(bootstrap, group, topic, len(ends))
        for partition, end in ends.items():
            if max(committed[partition], 0) != end:
                stuck[f"{topic}[{partition}]"] = (committed[partition], end)
    return stuck


def _survivors(fleet: Fleet, nemesis: Nemesis) -> list[Member]:
    return [m for m in fleet.alive() if m.name not in nemesis.expected_exits]


def _gauges(members: list[Member]) -> dict[str, float]:
    """Lag summed, and paused series set, over the survivors' /metrics; unreachable ones count as lag."""
    lag = paused = 0.0
    for member in members:
        try:
            samples = scrape_metrics(member.metrics_port)
        except OSError:
            lag += 1  # not serving (yet): not evidence of a drained consumer
            continue
        lag += metric(samples, "neotool_consumer_lag_records")
        paused += metric(samples, "neotool_consumer_partition_paused")
    return {"lag": lag, "paused": paused}


def await_liveness(
    outcome: Outcome, fleet: Fleet, nemesis: Nemesis, bootstrap: str, group: str, topics: list[str], drain_s: float
) -> None:
    deadline = time.monotonic() + drain_s
    stuck = _stuck(bootstrap, group, topics)
    gauges: Mapping[str, float] = {"lag": -1, "paused": -1}
    while time.monotonic() < deadline:
        stuck = _stuck(bootstrap, group, topics)
        if not stuck:
            gauges = _gauges(_survivors(fleet, nemesis))
            if gauges["lag"] == 0 and gauges["paused"] == 0:
                return
        time.sleep(0.5)  # polling the brokers and /metrics: there is no event to await from outside
    outcome.stuck = stuck
    if stuck:
        first = ", ".join(f"{tp} committed {c} of {e}" for tp, (c, e) in sorted(stuck.items()))
        outcome.findings.add(f"liveness: {drain_s:.0f}s after the last fault, stuck partitions: {first}")
    else:
        outcome.findings.add(f"liveness: committed to the end, but the survivors' gauges read {dict(gauges)}")


def _ended_on_their_own(outcome: Outcome, fleet: Fleet, nemesis: Nemesis) -> None:
    """Members no fault ended that are gone: an abort (SIGABRT, -6: librdkafka's assertions) is judged with
    safety (accepted only if nothing is lost); any other exit is a violation."""
    for member in fleet.members:
        if member.name in nemesis.expected_exits or member.alive():
            continue
        if member.process.returncode == -signal.SIGABRT:
            outcome.aborted.append(f"{member.name}: {_abort_reason(member.tail())}")
        else:
            outcome.findings.add(f"{member.name} exited on its own ({member.process.returncode})\n{member.tail()}")


def stop_and_check_exits(outcome: Outcome, fleet: Fleet, nemesis: Nemesis) -> None:
    _ended_on_their_own(outcome, fleet, nemesis)
    survivors = _survivors(fleet, nemesis)
    for member in survivors:
        fleet.fault(member, "SIGTERM")
        member.process.send_signal(signal.SIGTERM)
    for member in survivors:
        code = fleet.wait(member, 60)
        if code != 0:
            outcome.findings.add(f"{member.name} exited {code} on SIGTERM\n{member.tail()}")
    for name, expected in nemesis.expected_exits.items():
        member = next(m for m in fleet.members if m.name == name)
        code = fleet.wait(member, 60)
        if code != expected:
            outcome.findings.add(f"{name} exited {code}, its fault implies {expected}\n{member.tail()}")
