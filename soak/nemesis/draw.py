"""The nemesis's faults drawn from a seed: which kinds, when, for how long (applied by :mod:`soak.nemesis.schedule`).

The cuts are drawn from a stream of their own (seed + 2) and added to the others, so that a seed's other faults
are the same with and without them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = [
    "CUTS",
    "HANDLER_FAULTS",
    "MEMBER_FAULTS",
    "NETWORK_FAULTS",
    "NODE_FAULTS",
    "Fault",
    "describe",
    "draw_schedule",
]

MEMBER_FAULTS = ("kill", "term", "stop", "join")
HANDLER_FAULTS = ("spike", "outage", "dlq")
NODE_FAULTS = ("leader", "coordinator")
NETWORK_FAULTS = ("cut",)


@dataclass(frozen=True)
class Fault:
    at: float
    kind: str
    duration: float = 0.0
    hard: bool = False  # node faults: SIGKILL instead of a clean stop

    def __str__(self) -> str:
        lasting = f" for {self.duration:.1f}s" if self.duration else ""
        how = " (SIGKILL)" if self.kind in NODE_FAULTS and self.hard else ""
        return f"t+{self.at:5.1f}s {self.kind}{how}{lasting}"


CUTS = 2  # network cuts per schedule, where the run has proxies


def draw_schedule(
    seed: int,
    phase_s: float,
    faults: int,
    *,
    nodes: int,
    session_s: float,
    poll_interval_s: float,
    cuts: bool = False,
) -> list[Fault]:
    """``faults`` faults at random times in ``[0, phase_s]`` (and, with ``cuts``, :data:`CUTS` network cuts, half
    shorter than the session timeout, half longer); every fault is over by ``phase_s`` + 12 s."""
    rng = random.Random(seed)
    kinds = [*MEMBER_FAULTS, *MEMBER_FAULTS[:2], *HANDLER_FAULTS] + ([*NODE_FAULTS] * 2 if nodes > 1 else [])
    drawn: list[Fault] = []
    node_free_at = 0.0
    for _ in range(faults):
        kind = rng.choice(kinds)
        at = round(rng.uniform(0.0, phase_s), 1)
        duration = 0.0
        if kind == "stop":
            duration = session_s + rng.uniform(1.0, 4.0)
        elif kind == "spike":
            duration = poll_interval_s + rng.uniform(1.0, 3.0)
        elif kind == "outage":
            duration = rng.uniform(2.0, 5.0)
        elif kind == "dlq":
            duration = rng.uniform(2.0, 8.0)
        elif kind in NODE_FAULTS:
            at = max(at, node_free_at)
            duration = rng.uniform(3.0, 8.0)
            node_free_at = at + duration + 15.0  # restarted and back in sync before the next node fault
            if at > phase_s:
                continue
        drawn.append(Fault(at, kind, round(duration, 1), hard=rng.random() < 0.5))
    drawn += _draw_cuts(random.Random(seed + 2), phase_s, session_s, CUTS * cuts)
    return sorted(drawn, key=lambda f: f.at)


def _draw_cuts(rng: random.Random, phase_s: float, session_s: float, count: int) -> list[Fault]:
    """``count`` network cuts: the even ones shorter than the session (the member reconnects and stays), the
    odd ones longer (it is evicted, loses its partitions and joins again once healed)."""
    cuts = []
    for index in range(count):
        duration = rng.uniform(1.0, session_s) if index % 2 == 0 else session_s + rng.uniform(1.0, 4.0)
        cuts.append(Fault(round(rng.uniform(0.0, phase_s), 1), "cut", round(duration, 1)))
    return cuts


def describe(schedule: list[Fault]) -> str:
    return "\n".join(f"  {fault}" for fault in schedule) or "  (no faults)"
