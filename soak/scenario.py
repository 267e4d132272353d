"""A scenario run as the tests see it: its sizes (:class:`Scale`), its ledger, its figures and its verdict."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from soak.invariants import Verdict
from soak.ledger import Ledger

__all__ = ["Scale", "ScenarioRun"]

T = TypeVar("T")


@dataclass
class Scale:
    """Sizes of the current profile: ``scale.pick(quick, full)``."""

    profile: str

    @property
    def full(self) -> bool:
        return self.profile == "full"

    def pick(self, quick: T, full: T) -> T:
        return full if self.full else quick


@dataclass
class ScenarioRun:
    """One scenario run: its work folder and ledger; the test fills in the verdict and the figures."""

    title: str
    workdir: Path
    ledger: Ledger
    group: str
    verdict: Verdict | None = None
    figures: dict[str, object] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def restart_clock(self) -> None:
        self.started = time.monotonic()

    def note(self, **figures: object) -> None:
        self.figures.update(figures)
        print(f"[{self.title}] " + ", ".join(f"{k}={v}" for k, v in figures.items()), flush=True)

    def finish(self, verdict: Verdict) -> Verdict:
        self.verdict = verdict
        print(f"[{self.title}] {verdict.summary()} in {time.monotonic() - self.started:.1f}s", flush=True)
        return verdict
