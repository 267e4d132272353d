"""The throughput modes against a real broker: ``python -m bench.throughput_modes`` (``make bench-modes``).

Two workloads, each variant on a fresh consumer group over the same pre-filled single-partition topic:

* **I/O-bound**: 10,000 records with 1,000 distinct keys; the handler waits a uniform 0-5 ms (``time.sleep`` on
  a worker thread, or ``asyncio.sleep`` on the event loop; the same seeded waits for every variant). Parallel
  Consumer's published figures for the same shape are shown beside ours.
* **CPU-bound no-op**: the handler does nothing, so what is measured is the runner's own cost per record, and
  what concurrency adds to it.

Time runs from the first record entering the handler to the last one leaving it; CPU is ``getrusage`` of this
process over the same window (the runner's client threads included; the broker runs in its own process).
Results: ``bench/results/throughput-modes.md`` and ``.json``. Figures, not pass/fail: the goals are judged in
the markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.observability.logs import configure_logging
from neotool_common.producing.envelope import build_envelope, encode_envelope, new_batch_id
from neotool_common.records.message import Message
from neotool_common.testing.harness import running
from neotool_common.testing.kafka import KafkaEndpoint, LocalKafkaCluster

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MAX_WAIT_S = 0.005
# Confluent's Parallel Consumer README (its "ordering guarantees" example): 10,000 records whose processing takes
# 0-5 ms, run sequentially by partition versus ordered by key with at least 100 keys.
PARALLEL_CONSUMER = {"partition": 22.2, "key": 2.2}


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    handler: str  # sleep, async-sleep, noop, async-noop
    env: dict[str, str] = field(default_factory=dict)


def mode(concurrency: int, ordering: str) -> dict[str, str]:
    return {"MAX_CONCURRENCY": str(concurrency), "ORDERING": ordering}


IO_VARIANTS = (
    Variant("sequential", "sequential runner (max_concurrency 1)", "sleep"),
    Variant("key-100", "ordering=key, 100 worker threads", "sleep", mode(100, "key")),
    Variant("unordered-100", "ordering=unordered, 100 worker threads", "sleep", mode(100, "unordered")),
    Variant("key-100-async", "ordering=key, async, 100 at once", "async-sleep", mode(100, "key")),
    Variant("unordered-100-async", "ordering=unordered, async, 100 at once", "async-sleep", mode(100, "unordered")),
)
CPU_VARIANTS = (
    Variant("sequential", "sequential runner (max_concurrency 1)", "noop"),
    Variant("key-8", "ordering=key, 8 worker threads", "noop", mode(8, "key")),
    Variant("unordered-8", "ordering=unordered, 8 worker threads", "noop", mode(8, "unordered")),
    Variant("key-8-async", "ordering=key, async, 8 at once", "async-noop", mode(8, "key")),
)


class Timed(KafkaConsumerRunner):
    """Counts records through the handler; notes the time and CPU of the first entry and the last exit."""

    group_id = "bench-modes"
    topics: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: RunnerSettings, expected: int, waits: Sequence[float]) -> None:
        super().__init__(settings, registry=CollectorRegistry())
        self.expected = expected
        self.waits = waits
        self.entered = itertools.count()
        self.left = itertools.count(1)
        self.first: tuple[float, float] | None = None
        self.last: tuple[float, float] | None = None
        self.finished = threading.Event()

    def enter(self) -> None:
        if next(self.entered) == 0:
            self.first = (time.perf_counter(), _cpu_s())

    def leave(self) -> None:
        if next(self.left) == self.expected:
            self.last = (time.perf_counter(), _cpu_s())
            self.finished.set()


class Sleeping(Timed):
    def process(self, message: Message) -> None:
        self.enter()
        time.sleep(self.waits[message.offset])  # the I/O being simulated
        self.leave()


class AsyncSleeping(Timed):
    async def process(self, message: Message) -> None:  # type: ignore[override]
        self.enter()
        await asyncio.sleep(self.waits[message.offset])
        self.leave()


class Noop(Timed):
    def process(self, message: Message) -> None:
        self.enter()
        self.leave()


class AsyncNoop(Timed):
    async def process(self, message: Message) -> None:  # type: ignore[override]
        self.enter()
        self.leave()


HANDLERS: dict[str, type[Timed]] = {
    "sleep": Sleeping,
    "async-sleep": AsyncSleeping,
    "noop": Noop,
    "async-noop": AsyncNoop,
}


@dataclass
class Run:
    variant: str
    round: int
    records: int
    seconds: float
    cpu_us_per_record: float

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds


def measure(endpoint: KafkaEndpoint, topic: str, variant: Variant, records: int, waits: Sequence[float]) -> Run:
    env = {
        "KAFKA_BROKERS": endpoint.bootstrap_servers,
        "KAFKA_TOPICS": topic,
        "KAFKA_GROUP_ID": f"bench-modes-{uuid.uuid4().hex[:8]}",
        "METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
        **variant.env,
    }
    runner = HANDLERS[variant.handler](RunnerSettings.from_env(env), records, waits)
    with running(runner, join_timeout=120):
        if not runner.finished.wait(600):
            raise RuntimeError(f"{variant.name}: not every record was handled within 600 s")
    assert runner.first is not None
    assert runner.last is not None
    seconds = runner.last[0] - runner.first[0]
    cpu = runner.last[1] - runner.first[1]
    return Run(variant.name, 0, records, seconds, cpu / records * 1e6)


def prefill(endpoint: KafkaEndpoint, records: int, keys: int) -> str:
    """A single-partition topic of ``records`` envelopes whose keys repeat every ``keys`` records."""
    topic = f"bench.modes.{uuid.uuid4().hex[:6]}"
    endpoint.create_topic(topic, 1)
    endpoint.create_topic(topic + ".dlq", 1)
    producer = Producer(
        {
            "bootstrap.servers": endpoint.bootstrap_servers,
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "zstd",
            "linger.ms": 50,
        }
    )
    batch_id = new_batch_id()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(records):
        key = f"inst-{index % keys:06d}"
        envelope = build_envelope(
            {"routing_number": f"{index:09d}", "name": f"Institution {index % keys}"},
            record_id=key,
            batch_id=batch_id,
            ingested_at=start + timedelta(milliseconds=index),
        )
        while True:
            try:
                producer.produce(topic, value=encode_envelope(envelope), key=key.encode(), partition=0)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError(f"pre-fill of {topic} did not finish")
    return topic


def run_workload(
    endpoint: KafkaEndpoint, variants: Sequence[Variant], records: int, keys: int, rounds: int, waits: Sequence[float]
) -> list[Run]:
    topic = prefill(endpoint, records, keys)
    warm_up = min(records, 1000)
    for variant in variants:  # untimed: imports, first connections, thread start-up
        measure(endpoint, topic, variant, warm_up, waits)
    runs = []
    for round_number in range(rounds):
        shift = round_number % len(variants)
        for variant in [*variants[shift:], *variants[:shift]]:  # rotating order: drift in load hits every variant
            run = measure(endpoint, topic, variant, records, waits)
            run.round = round_number + 1
            print(f"  round {run.round} {variant.name}: {run.seconds:.2f} s, {run.cpu_us_per_record:.1f} µs CPU/record")
            runs.append(run)
    return runs


def medians(runs: Sequence[Run], variants: Sequence[Variant]) -> dict[str, dict[str, float]]:
    summary = {}
    for variant in variants:
        mine = [run for run in runs if run.variant == variant.name]
        summary[variant.name] = {
            "seconds": statistics.median(run.seconds for run in mine),
            "seconds_min": min(run.seconds for run in mine),
            "seconds_max": max(run.seconds for run in mine),
            "records_per_s": statistics.median(run.records_per_s for run in mine),
            "cpu_us_per_record": statistics.median(run.cpu_us_per_record for run in mine),
        }
    return summary


def ratio(runs: Sequence[Run], numerator: str, denominator: str, value: Callable[[Run], float]) -> float:
    """The median over rounds of ``value(numerator) / value(denominator)`` taken within each round."""
    by_round: dict[int, dict[str, Run]] = {}
    for run in runs:
        by_round.setdefault(run.round, {})[run.variant] = run
    return statistics.median(value(r[numerator]) / value(r[denominator]) for r in by_round.values())


def goals(io: Sequence[Run], cpu: Sequence[Run]) -> list[tuple[str, float, str, bool]]:
    seconds: Callable[[Run], float] = lambda run: run.seconds  # noqa: E731 - a key function, named for reading
    cost: Callable[[Run], float] = lambda run: run.cpu_us_per_record  # noqa: E731
    rows = []
    for flavour in ("", "-async"):
        speedup = ratio(io, "sequential", f"key-100{flavour}", seconds)
        rows.append((f"key{flavour or ' (threads)'} >= 8 x faster than sequential", speedup, ">= 8", speedup >= 8))
        against = ratio(io, f"key-100{flavour}", f"unordered-100{flavour}", seconds)
        rows.append((f"key{flavour or ' (threads)'} within 1.3 x of unordered", against, "<= 1.3", against <= 1.3))
    for name in ("key-8", "unordered-8", "key-8-async"):
        extra = ratio(cpu, name, "sequential", seconds)
        rows.append((f"no-op {name}: time against sequential", extra, "<= 1.10", extra <= 1.10))
        extra_cpu = ratio(cpu, name, "sequential", cost)
        rows.append((f"no-op {name}: CPU per record against sequential", extra_cpu, "<= 1.10", extra_cpu <= 1.10))
    return rows


def render(document: dict[str, Any]) -> str:
    io, cpu = document["io_bound"], document["cpu_bound"]
    lines = [
        "# Throughput modes: latest results",
        "",
        f"Generated by `bench/throughput_modes.py` on {document['generated']}: medians (min-max) over "
        f"{document['rounds']} rounds in rotating order, one fresh consumer group per run, single-partition topics. "
        f"Machine: {document['machine']}; source: commit {document['source']}. The machine was shared with other "
        "work while this ran.",
        "",
        f"## I/O-bound: {io['records']:,} records, {io['keys']:,} keys, handler waits a uniform 0-5 ms",
        "",
        "| variant | seconds | records/s | x sequential |",
        "|---|---|---|---|",
    ]
    base = io["summary"]["sequential"]["seconds"]
    for variant in IO_VARIANTS:
        row = io["summary"][variant.name]
        lines.append(
            f"| {variant.label} | {row['seconds']:.2f} ({row['seconds_min']:.2f}-{row['seconds_max']:.2f}) "
            f"| {row['records_per_s']:,.0f} | {base / row['seconds']:.1f} |"
        )
    lines += [
        "",
        "Confluent's Parallel Consumer README, for the same shape (10,000 records, 0-5 ms of work each): "
        f"**{PARALLEL_CONSUMER['partition']} s** processed in partition order, **{PARALLEL_CONSUMER['key']} s** "
        "in key order with 100 or more keys (its published figures, not measured here). Ours, measured above: "
        f"{io['summary']['sequential']['seconds']:.1f} s in partition order, "
        f"{io['summary']['key-100']['seconds']:.2f} s in key order on threads and "
        f"{io['summary']['key-100-async']['seconds']:.2f} s on asyncio.",
        "",
        f"## CPU-bound: {cpu['records']:,} records, no-op handler (the runner's own cost)",
        "",
        "| variant | seconds | records/s | CPU µs/record |",
        "|---|---|---|---|",
    ]
    for variant in CPU_VARIANTS:
        row = cpu["summary"][variant.name]
        lines.append(
            f"| {variant.label} | {row['seconds']:.2f} ({row['seconds_min']:.2f}-{row['seconds_max']:.2f}) "
            f"| {row['records_per_s']:,.0f} | {row['cpu_us_per_record']:.1f} |"
        )
    lines += ["", "## Goals", "", "| goal | measured | target | verdict |", "|---|---|---|---|"]
    for goal, measured, target, met in document["goals"]:
        lines.append(f"| {goal} | {measured:.2f} | {target} | {'met' if met else '**missed**'} |")
    lines += [
        "",
        "Ratios are taken within each round, then the median over rounds. Speed-ups are sequential time over the "
        "variant's time; the no-op rows are the variant's time (or CPU per record) over the sequential runner's.",
        "",
    ]
    return "\n".join(lines)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, Python {platform.python_version()}, load average {load} at the end"


def _source() -> str:
    """The commit measured, marked when the working tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    try:
        commit, changed = git("rev-parse", "--short=12", "HEAD"), git("status", "--porcelain", "src")
    except OSError:
        return "unknown"
    return commit + (" with uncommitted changes under src/" if changed else "")


@contextlib.contextmanager
def _broker(bootstrap: str) -> Iterator[KafkaEndpoint]:
    if bootstrap:
        yield KafkaEndpoint(bootstrap)
        return
    print("starting a local Kafka broker")
    with LocalKafkaCluster(1, heap="1g") as cluster:
        yield cluster


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput_modes", description=__doc__.split("\n")[0])
    parser.add_argument("--io-records", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--cpu-records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bootstrap", default=os.environ.get("NEOTOOL_TEST_KAFKA_BROKERS", ""))
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("WARNING", "console")
    rng = random.Random(5)
    waits = [rng.uniform(0, MAX_WAIT_S) for _ in range(args.io_records)]
    with _broker(args.bootstrap) as endpoint:
        print(f"I/O-bound: {args.io_records:,} records, {args.keys:,} keys")
        io = run_workload(endpoint, IO_VARIANTS, args.io_records, args.keys, args.rounds, waits)
        print(f"CPU-bound: {args.cpu_records:,} records, no-op")
        cpu = run_workload(endpoint, CPU_VARIANTS, args.cpu_records, args.cpu_records, args.rounds, ())
    document = {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "source": _source(),
        "rounds": args.rounds,
        "parallel_consumer_published_s": PARALLEL_CONSUMER,
        "io_bound": {
            "records": args.io_records,
            "keys": args.keys,
            "summary": medians(io, IO_VARIANTS),
            "runs": [asdict(run) for run in io],
        },
        "cpu_bound": {
            "records": args.cpu_records,
            "summary": medians(cpu, CPU_VARIANTS),
            "runs": [asdict(run) for run in cpu],
        },
        "goals": goals(io, cpu),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "throughput-modes.json").write_text(json.dumps(document, indent=2) + "\n")
    (args.out_dir / "throughput-modes.md").write_text(render(document))
    print(render(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
