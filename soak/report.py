"""The report table: one row per scenario run, written to ``soak/results/latest.md`` by ``make soak``."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import confluent_kafka

from neotool_common.testing.kafka import KAFKA_VERSION

__all__ = ["NemesisRow", "Report", "Row"]

_NEMESIS_HEADING = "## Nemesis (scenario 14)"


@dataclass(frozen=True)
class Row:
    scenario: str
    records: int
    lost: int
    duplicates: int
    dlq: int
    seconds: float
    result: str
    notes: str = ""


@dataclass(frozen=True)
class NemesisRow:
    """One nemesis seed: what was done, and how it ended (``stuck``: partitions not drained in time)."""

    seed: int
    protocol: str
    mode: str
    brokers: int
    faults: str
    records: int
    lost: int
    duplicates: int
    duplicate_bound: int
    dead: int
    stuck: int
    drain_s: float
    seconds: float
    result: str


@dataclass
class Report:
    profile: str
    rows: list[Row] = field(default_factory=list)
    nemesis: list[NemesisRow] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def table(self) -> str:
        lines = [
            "| scenario | records | lost | duplicates | DLQ | time (s) | result | figures |",
            "|---|--:|--:|--:|--:|--:|---|---|",
        ]
        for row in sorted(self.rows, key=_scenario_number):
            lines.append(
                f"| {row.scenario} | {row.records} | {row.lost} | {row.duplicates} | {row.dlq} | "
                f"{row.seconds:.1f} | {row.result} | {row.notes} |"
            )
        return "\n".join(lines)

    def nemesis_table(self) -> str:
        lines = [
            "| seed | protocol | mode | nodes | faults by kind | records | lost | duplicates (bound) | DLQ | stuck "
            "| drain (s) | time (s) | result |",
            "|--:|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|---|",
        ]
        for r in sorted(self.nemesis, key=lambda r: r.seed):
            lines.append(
                f"| {r.seed} | {r.protocol} | {r.mode} | {r.brokers} | {r.faults} | {r.records} | {r.lost} | "
                f"{r.duplicates} ({r.duplicate_bound}) | {r.dead} | {r.stuck} | {r.drain_s:.1f} | {r.seconds:.1f} "
                f"| {r.result} |"
            )
        return "\n".join(lines)

    def markdown(self, elapsed_s: float) -> str:
        failed = sum(1 for row in self.rows if row.result != "pass")
        return "\n".join(
            [
                "# Soak report",
                "",
                f"Run {self.started:%Y-%m-%d %H:%M} UTC, profile `{self.profile}`, {len(self.rows)} scenario runs, "
                f"{failed} failed, {elapsed_s / 60:.1f} min in all.",
                f"Apache Kafka {KAFKA_VERSION} (KRaft, local JVMs), confluent-kafka {confluent_kafka.version()} "
                f"(librdkafka {confluent_kafka.libversion()[0]}), Python {platform.python_version()}, "
                f"{_cpus()} CPU cores.",
                "",
                "*lost*: acknowledged by the producer, neither processed nor dead-lettered (P - (O | D)). "
                "*duplicates*: processings beyond the first (the sum of deliveries - 1 over O). "
                "*DLQ*: distinct records in the dead-letter topic. "
                "The invariants and bounds are described in `soak/README.md`.",
                "",
                self.table(),
                "",
                *(
                    [
                        _NEMESIS_HEADING,
                        "",
                        "*stuck*: partitions whose committed offset had not reached the end offset 60 s after the "
                        "last fault. *drain*: from the last fault undone (and the producers done) to every partition "
                        "committed to its end, the lag gauges at 0 and nothing paused.",
                        "",
                        self.nemesis_table(),
                        "",
                    ]
                    if self.nemesis
                    else []
                ),
            ]
        )

    def write(self, path: Path, elapsed_s: float) -> None:
        """Write the report; a run of the nemesis alone keeps the scenario table the file already has."""
        path.parent.mkdir(parents=True, exist_ok=True)
        text = self.markdown(elapsed_s)
        if not self.rows and path.exists():
            before = path.read_text(encoding="utf-8").split(_NEMESIS_HEADING, 1)[0].rstrip("\n")
            failed = sum(1 for row in self.nemesis if row.result != "pass")
            text = "\n".join(
                [
                    before,
                    "",
                    text[text.index(_NEMESIS_HEADING) :].rstrip("\n"),
                    "",
                    f"Nemesis run {self.started:%Y-%m-%d %H:%M} UTC, profile `{self.profile}`, {len(self.nemesis)} "
                    f"seeds, {failed} failed, {elapsed_s / 60:.1f} min in all.",
                    "",
                ]
            )
        path.write_text(text, encoding="utf-8")


def _scenario_number(row: Row) -> int:
    return int(row.scenario.split(".", 1)[0])


def _cpus() -> int:
    return len(os.sched_getaffinity(0))
