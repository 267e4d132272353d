"""Consumer processes and the faults done to them: start, SIGTERM, SIGKILL, SIGSTOP/SIGCONT, by PID only.

:class:`Fleet` owns every consumer process a scenario starts; leaving its ``with`` block kills whatever is
still running (also when the scenario failed), so no process outlives its scenario. :class:`FaultSchedule`
draws the random points of a fault schedule from a seed, so a failing run can be repeated.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from neotool_common.testing.harness import wait_until
from soak.ledger import EventKind, Ledger

__all__ = ["FaultSchedule", "Fleet", "Member", "consumer_env", "scrape_metrics"]

ROOT = Path(__file__).resolve().parents[1]
SESSION_TIMEOUT_MS = 3000


def consumer_env(bootstrap: str, topic: str, group: str, ledger: Path, **settings: str) -> dict[str, str]:
    """The environment of a soak consumer process; ``settings`` override the defaults."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
        "PYTHONDONTWRITEBYTECODE": "1",
        "KAFKA_BROKERS": bootstrap,
        "KAFKA_TOPICS": topic,
        "KAFKA_GROUP_ID": group,
        "SOAK_LEDGER": str(ledger),
        "METRICS_PORT": "0",
        "METRICS_HOST": "127.0.0.1",
        "COMMIT_INTERVAL_MS": "200",
        "COMMIT_EVERY_RECORDS": "500",
        "SHUTDOWN_GRACE_MS": "10000",
        "DLQ_WRITE_TIMEOUT_MS": "5000",
        "RETRY_BACKOFF_INITIAL_MS": "50",
        "RETRY_BACKOFF_MAX_MS": "500",
        "KAFKA_CONFIG_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "KAFKA_CONFIG_HEARTBEAT_INTERVAL_MS": "500",
        **settings,
    }


@dataclass
class Member:
    """One consumer process. ``name`` is how it signs the ledger: ``c<slot>.<start>``."""

    name: str
    slot: int
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self) -> list[dict[str, Any]]:
        """The runner's JSON log lines (librdkafka's own lines are plain text and skipped)."""
        events = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                events.append(json.loads(line))
        return events

    def tail(self, chars: int = 4000) -> str:
        return f"--- {self.name} (pid {self.pid}) log tail:\n{self.logs()[-chars:]}"


@dataclass(frozen=True)
class Exit:
    member: str
    code: int
    seconds: float


class Fleet:
    """Starts soak consumers as processes of one scenario; stops them by PID; kills leftovers on exit."""

    def __init__(self, env: Mapping[str, str], workdir: Path, ledger: Ledger) -> None:
        self.env = dict(env)
        self.workdir = workdir
        self.ledger = ledger
        self.members: list[Member] = []
        self._starts: dict[int, int] = {}
        self._let_go: set[str] = set()  # members whose exit the scenario caused or awaits

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for member in self.members:
            if member.alive():
                member.process.send_signal(signal.SIGCONT)  # a stopped process cannot act on anything else
                member.process.kill()
            member.process.wait(30)

    def start(self, slot: int = 1, **settings: str) -> Member:
        self._starts[slot] = self._starts.get(slot, 0) + 1
        name = f"c{slot}.{self._starts[slot]}"
        log_path = self.workdir / f"{name}.log"
        env = {**self.env, **settings, "SOAK_MEMBER": name}
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "soak.consumer"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        member = Member(name, slot, process, log_path, int(env.get("METRICS_PORT", "0")))
        self.members.append(member)
        return member

    def alive(self) -> list[Member]:
        return [m for m in self.members if m.alive()]

    def fault(self, member: Member, what: str) -> None:
        self.ledger.record("scenario", EventKind.FAULT, detail=f"{what} {member.name} (pid {member.pid})")

    def terminate(self, member: Member, timeout: float = 60.0) -> Exit:
        """SIGTERM and wait for the exit; how long the graceful shutdown took."""
        self.fault(member, "SIGTERM")
        self._let_go.add(member.name)
        started = time.monotonic()
        member.process.send_signal(signal.SIGTERM)
        code = self.wait(member, timeout)
        return Exit(member.name, code, time.monotonic() - started)

    def kill(self, member: Member) -> None:
        self.fault(member, "SIGKILL")
        self._let_go.add(member.name)
        member.process.send_signal(signal.SIGKILL)
        assert self.wait(member, 30) == -signal.SIGKILL

    def watch(self, condition: Callable[[], object], what: str, timeout: float = 120.0) -> None:
        """Wait until ``condition`` holds; fail at once, with its log, if a member exits on its own meanwhile."""

        def holds() -> object:
            for member in self.members:
                if member.name not in self._let_go and not member.alive():
                    raise AssertionError(
                        f"{member.name} exited ({member.process.returncode}) waiting for {what}\n{member.tail()}"
                    )
            return condition()

        wait_until(holds, timeout=timeout, interval=0.05, what=what)

    def wait_working(self, member: Member, timeout: float = 120.0) -> None:
        """Until ``member`` has processed a record: it joined, got partitions and works."""
        self.watch(lambda: self.ledger.processed_count(member.name) > 0, f"{member.name} processing", timeout)

    def wait_up(self, timeout: float = 120.0) -> None:
        """Until every running member's runner has started (a SIGTERM then meets its handler)."""
        self.watch(lambda: len(self.up()) == len(self.alive()), "every member up", timeout)

    def wait(self, member: Member, timeout: float) -> int:
        self._let_go.add(member.name)
        try:
            return member.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{member.name} still running after {timeout}s\n{member.tail()}") from None

    def stop_all(self, timeout: float = 60.0) -> list[Exit]:
        """SIGTERM every running member at once, then wait for each."""
        running = self.alive()
        for member in running:
            self.fault(member, "SIGTERM")
            self._let_go.add(member.name)
            member.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        return [Exit(m.name, self.wait(m, timeout), time.monotonic() - started) for m in running]

    def tails(self, *names: str) -> str:
        """The log tails of the members called ``names`` (default: all)."""
        return "\n".join(m.tail(3000) for m in self.members if not names or m.name in names)

    def up(self) -> list[Member]:
        """Running members whose runner has started (its signal handlers are installed)."""
        started = {e.member for e in self.ledger.events(EventKind.STARTED)}
        return [m for m in self.alive() if m.name in started]


@dataclass
class FaultSchedule:
    """Random points of a fault schedule, drawn from ``seed``: the same seed gives the same schedule."""

    seed: int
    rng: random.Random = field(init=False)
    applied: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def delay(self, low_s: float, high_s: float) -> float:
        """Sleep a random time in ``[low_s, high_s]``: where in the run the next fault lands."""
        seconds = self.rng.uniform(low_s, high_s)
        time.sleep(seconds)
        return seconds

    def choice(self, options: list[Any]) -> Any:
        return self.rng.choice(options)

    def integer(self, low: int, high: int) -> int:
        return self.rng.randint(low, high)

    def note(self, what: str) -> None:
        self.applied.append(what)


def scrape_metrics(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``/metrics`` of a consumer process as ``{(sample name, labels): value}``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def metric(samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum of ``name`` over the samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (sample, have), value in samples.items() if sample == name and wanted <= have)
