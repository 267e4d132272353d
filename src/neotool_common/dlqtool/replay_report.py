"""What a replay is tuned with (:class:`ReplayTuning`) and what it did (:class:`ReplayReport`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from neotool_common.dlqtool.decisions import Decision
from neotool_common.errors import ConfigurationError

__all__ = ["ReplayReport", "ReplayTuning"]


@dataclass(frozen=True)
class ReplayTuning:
    """Knobs with safe defaults. ``max_in_flight`` bounds what a crash can duplicate."""

    max_in_flight: int = 500
    commit_interval_s: float = 1.0
    session_timeout_ms: int = 6000
    join_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise ConfigurationError("max_in_flight", "must be 1 or more")


@dataclass
class ReplayReport:
    """What a run did. ``total`` is the number of DLQ offsets it set out to scan; ``audiences`` counts the copies
    replayed by who processes them (:attr:`~neotool_common.dlqtool.targets.ReplayTarget.audience`)."""

    group: str
    total: int = 0
    scanned: int = 0
    replayed: int = 0
    skipped: int = 0
    parked: list[Decision] = field(default_factory=list)
    reported: list[Decision] = field(default_factory=list)
    failed: list[tuple[Decision, str]] = field(default_factory=list)
    commit_error: str | None = None
    interrupted: bool = False
    limit_reached: bool = False
    created_topic: str | None = None
    audiences: Counter[str] = field(default_factory=Counter)

    def count_replayed(self, decision: Decision) -> None:
        self.replayed += 1
        if decision.target is not None:
            self.audiences[decision.target.audience] += 1

    @property
    def complete(self) -> bool:
        """Every selected record went back to its topic: nothing parked, reported or failed."""
        return not (self.parked or self.reported or self.failed or self.commit_error)
