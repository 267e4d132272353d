"""What every variant process measures about itself, and how it is told what to read (standard library only).

A variant calls :meth:`Meter.first` right after its first record(s) and :meth:`Meter.last` right after the
record that completes the expected count, each with how many records it has handled so far. Start-up and group
join fall before the first mark; shutdown after the last. CPU time is ``getrusage(RUSAGE_SELF)``, so it
includes the client library's own threads.

In latency mode a variant also calls :meth:`Meter.latency` once per record with the producer's send time; the
first ``--warmup`` records are left out of the percentiles (the producer's own start-up delays them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Meter", "VariantArgs", "parse_variant_args"]


@dataclass(frozen=True)
class VariantArgs:
    bootstrap: str
    topic: str
    group: str
    expected: int
    invalid: int
    out: Path
    mode: str
    warmup: int
    rss_every: float


def parse_variant_args(argv: list[str] | None = None) -> VariantArgs:
    """The command line every variant takes (the harness pins the process to its cores before it starts)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--expected", type=int, required=True, help="records to read before stopping")
    parser.add_argument("--invalid", type=int, default=0, help="of those, how many the variant must dead-letter")
    parser.add_argument("--out", type=Path, required=True, help="where to write the result JSON")
    parser.add_argument("--mode", choices=("throughput", "latency"), default="throughput")
    parser.add_argument("--warmup", type=int, default=0, help="latency mode: records left out of the percentiles")
    parser.add_argument("--rss-every", type=float, default=0.0, help="sample the RSS this often (seconds; 0: never)")
    ns = parser.parse_args(argv)
    return VariantArgs(
        ns.bootstrap, ns.topic, ns.group, ns.expected, ns.invalid, ns.out, ns.mode, ns.warmup, ns.rss_every
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """Wall clock, CPU and peak RSS of this process between its first and its last record."""

    def __init__(self, warmup: int = 0) -> None:
        self._warmup = warmup
        self._first: tuple[float, float, int] | None = None
        self._last: tuple[float, float, int] | None = None
        self._latencies_us: list[float] = []
        self._rss_samples: list[tuple[int, float]] = []
        self.extra: dict[str, Any] = {}

    @property
    def started(self) -> bool:
        return self._first is not None

    def first(self, handled: int) -> None:
        self._first = (time.perf_counter(), _cpu_seconds(), handled)

    def last(self, handled: int) -> None:
        self._last = (time.perf_counter(), _cpu_seconds(), handled)

    def latency(self, sent_ns: int) -> None:
        self._latencies_us.append((time.time_ns() - sent_ns) / 1000)

    def sample_rss(self, handled: Callable[[], int], every_s: float) -> None:
        """Record ``(records handled, current RSS in MB)`` every ``every_s`` seconds, on a daemon thread."""

        def sample() -> None:
            while True:
                self._rss_samples.append((handled(), _current_rss_mb()))
                time.sleep(every_s)

        threading.Thread(target=sample, name="rss-sampler", daemon=True).start()

    def result(self, variant: str, counted: int) -> dict[str, Any]:
        if self._first is None or self._last is None:
            raise RuntimeError(f"{variant}: the first or the last record was never seen")
        (t0, cpu0, n0), (t1, cpu1, n1) = self._first, self._last
        window = n1 - n0
        elapsed = t1 - t0
        result: dict[str, Any] = {
            "variant": variant,
            "counted": counted,
            "records_in_window": window,
            "elapsed_s": elapsed,
            "records_per_s": window / elapsed if elapsed > 0 else None,
            "cpu_us_per_record": (cpu1 - cpu0) * 1e6 / window if window else None,
            "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            # perf_counter is CLOCK_MONOTONIC, one clock for every process of the machine (bench/scaling.py)
            "window_start_s": t0,
            "window_end_s": t1,
        }
        if len(self._latencies_us) > self._warmup + 1:
            result["latency"] = _percentiles(self._latencies_us[self._warmup :])
        if self._rss_samples:
            result["rss_samples"] = [[n, round(mb, 1)] for n, mb in self._rss_samples]
        result.update(self.extra)
        return result

    def write(self, path: Path, variant: str, counted: int) -> None:
        path.write_text(json.dumps(self.result(variant, counted), indent=2))


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "count": len(samples),
        "p50_ms": cuts[49] / 1000,
        "p99_ms": cuts[98] / 1000,
        "max_ms": max(samples) / 1000,
    }
