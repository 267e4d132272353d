"""Instructions a record, counted by valgrind: ``python -m bench.instructions`` (``make bench-instructions``).

Seconds on a shared machine vary by half from one run to the next; instructions do not. Each variant runs the
runner, configured as ``bench/variants/runner.py`` does, over records held in memory: ``confluent_kafka.Message``
objects made from the benchmark's envelopes (bench/records.py), handed out by an in-memory consumer, dead letters
acknowledged by :class:`~neotool_common.testing.fakes.FakeProducer`. It runs twice under ``valgrind
--tool=callgrind``, over ``--small`` and ``--large`` records (the same ``--large`` ones built each time); the
difference over ``large - small`` is what one record costs, start-up and shutdown cancelling out. The client's
own work (fetching, librdkafka's threads, the dead-letter producer) is not in it: this is what the framework does
for a record. Nor are the dead-lettering records' WARNING lines: at full speed ``LOG_RECORD_WARNINGS_PER_S``' ten
a second are spread over thousands of dead letters, so the run writes none (and counts them, as the runner does).
Time is :class:`StepClock`'s, so that once-a-second work comes as often per record as at full speed; the lag
monitor's offsets are answered in memory (:class:`MemoryOffsets`). The instructions are split by where they ran
(:data:`GROUPS`; *Python* is libpython and any other extension module not named there). Writes
``bench/results/instructions.md`` and ``instructions.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import confluent_kafka
from prometheus_client import CollectorRegistry

from bench.machine import describe, source
from bench.records import POISON_EVERY, envelope_values
from bench.variants.runner import PAYLOAD_SCHEMA, Institution
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer import lag
from neotool_common.consumer.offset_source import NO_OFFSET, Key
from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.observability.line_budget import LineBudget
from neotool_common.observability.logs import configure_logging
from neotool_common.records.message import Message
from neotool_common.records.native import fast_envelope_type
from neotool_common.testing.fakes import FakeProducer
from neotool_common.testing.kafka import free_port

RESULTS = Path(__file__).resolve().parent / "results"
TOPIC = "bench.instructions"
# variant -> (payload declared, poison topic, what it is)
VARIANTS: dict[str, tuple[str, bool, str]] = {
    "runner": ("", False, "envelope validation, no-op process(), metrics on, INFO logs"),
    "runner-schema": ("schema", False, "as runner, with the example's payload JSON Schema"),
    "runner-pydantic": ("model", False, "as runner, with the same rules as a pydantic model"),
    "runner-poison": ("", True, "as runner, 1% of the records schema-invalid and dead-lettered"),
}
# Where an instruction ran, by the object file or source file callgrind names: (group, pattern), first match wins.
GROUPS = (
    ("msgspec", re.compile(r"msgspec")),
    ("compiled fast path", re.compile(r"_fast_native")),
    ("orjson", re.compile(r"orjson")),
    ("pydantic-core", re.compile(r"pydantic_core")),
    ("regular expressions", re.compile(r"_sre|sre_lib")),
    ("confluent-kafka", re.compile(r"confluent_kafka|librdkafka")),
    ("libc", re.compile(r"libc\.so|libc-|/glibc|sysdeps|stdlib/|string/")),
    ("Python", re.compile(r"python|Python-3")),
)
_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(.+)$")


class Runner(KafkaConsumerRunner):
    def process(self, message: Message) -> None:
        pass


class SchemaRunner(Runner):
    payload_schema: ClassVar[Path] = PAYLOAD_SCHEMA


class ModelRunner(Runner):
    payload_model: ClassVar[Any] = Institution


class MemoryConsumer:
    """The client, for the runner: one partition of records held in memory; stops the runner at their end."""

    def __init__(self, config: dict[str, Any], records: list[Any], limit: int, stop: Any) -> None:
        self._records, self._limit, self._position, self._stop = records, limit, 0, stop
        self._callbacks: tuple[Any, ...] = ()

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any, on_lost: Any) -> None:
        self._callbacks = (on_assign, on_revoke)

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        if self._position == 0 and self._callbacks:
            self._callbacks[0](self, [confluent_kafka.TopicPartition(TOPIC, 0)])
        batch = self._records[self._position : min(self._position + num_messages, self._limit)]
        self._position += len(batch) or 1
        if not batch:
            self._stop()
        return batch

    def position(self, partitions: list[Any]) -> list[Any]:
        return [confluent_kafka.TopicPartition(tp.topic, tp.partition, self._position) for tp in partitions]

    def committed(self, partitions: list[Any], timeout: float = -1) -> list[Any]:
        return [confluent_kafka.TopicPartition(tp.topic, tp.partition, -1001) for tp in partitions]

    def get_watermark_offsets(self, partition: Any, timeout: float = -1, cached: bool = False) -> tuple[int, int]:
        return 0, self._limit

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return argparse.Namespace(topics={TOPIC: None, TOPIC + ".dlq": None})

    def close(self) -> None:
        self._callbacks[1](self, [confluent_kafka.TopicPartition(TOPIC, 0)])

    def commit(self, *args: Any, **kwargs: Any) -> None:
        pass

    pause = resume = seek = store_offsets = commit


class StepClock:
    """The runner's clock: 1 ms further each time it is read, about 3 ms a poll-loop turn, as at full speed.

    Under valgrind a second passes for fifty times fewer records: once-a-second work (commits, lag, the topic
    check, the progress line) read from the system clock would weigh fifty times more in a record's count, and
    vary with the machine's load. On this clock it comes once per the same number of turns in every run.
    """

    def __init__(self) -> None:
        self._now = 1_000_000.0

    def monotonic(self) -> float:
        self._now += 0.001
        return self._now

    def time(self) -> float:
        return 1_714_521_600.0 + self.monotonic()


class MemoryOffsets:
    """The lag monitor's offsets, answered at once: the cluster's (an admin client of its own) are client work."""

    def __init__(self, end: int) -> None:
        self._end = end

    def end_offsets(self, partitions: Sequence[Key]) -> Future[dict[Key, int]]:
        return _answered(dict.fromkeys(partitions, self._end))

    def committed_offsets(self, partitions: Sequence[Key]) -> Future[dict[Key, int]]:
        return _answered(dict.fromkeys(partitions, NO_OFFSET))

    def close(self) -> None:
        pass


def _answered(offsets: dict[Key, int]) -> Future[dict[Key, int]]:
    answer: Future[dict[Key, int]] = Future()
    answer.set_result(offsets)
    return answer


def run_in_memory(variant: str, records: int, built: int) -> Runner:
    """The runner of ``variant`` over the first ``records`` of ``built`` envelopes; returns it once it stopped."""
    payload, poison, _ = VARIANTS[variant]
    # All ``built`` of them, whatever ``records`` is: both runs of a count make, hold and free the same objects.
    messages = [
        confluent_kafka.Message(
            topic=TOPIC, partition=0, offset=i, key=k, value=v, headers=None, timestamp=(1, 1_714_521_600_000 + i)
        )
        for i, (k, v) in enumerate(envelope_values(built, poison=poison))
    ]
    env = {**os.environ, "KAFKA_BROKERS": "127.0.0.1:9", "KAFKA_TOPICS": TOPIC, "KAFKA_GROUP_ID": "bench"}
    env.update(METRICS_PORT=str(free_port()), METRICS_HOST="127.0.0.1", LOG_LEVEL="INFO", LOG_FORMAT="json")
    kind = {"": Runner, "schema": SchemaRunner, "model": ModelRunner}[payload]
    settings = RunnerSettings.from_env(env)
    holder: list[Runner] = []
    offsets = mock.patch.object(lag.ClusterOffsets, "for_settings", return_value=MemoryOffsets(records))
    with offsets:  # the lag monitor is made with the runner
        runner = kind(
            settings,
            registry=CollectorRegistry(),
            consumer_factory=lambda config: MemoryConsumer(config, messages, records, holder[0].stop),
            producer_factory=FakeProducer,
            clock=StepClock(),
        )
    holder.append(runner)
    gc.freeze()  # the records held here are not the runner's heap: no collection walks them
    # At full speed the line budget's ten a second leave nearly every dead letter's WARNING line only counted.
    quiet = mock.patch.object(LineBudget, "allow", return_value=False)
    try:
        with quiet:
            runner.run()
    finally:
        gc.unfreeze()
    return runner


def split(annotated: str) -> dict[str, int]:
    """``callgrind_annotate`` output (self cost a function) as instructions by group, and ``total``."""
    groups: dict[str, int] = {}
    for line in annotated.splitlines():
        if line.startswith(("-- Auto-annotated source", "-- User-annotated source")):
            break  # source lines with their costs follow (callgrind_annotate --auto=yes): counted above already
        match = _LINE.match(line)
        if match is None or "PROGRAM TOTALS" in line or ":" not in match.group(2):
            continue
        count, where = int(match.group(1).replace(",", "")), match.group(2)
        group = next((name for name, pattern in GROUPS if pattern.search(where)), "other")
        groups[group] = groups.get(group, 0) + count
    groups["total"] = sum(groups.values())
    return groups


def _count(variant: str, records: int, built: int, workdir: Path) -> dict[str, int]:
    out = workdir / f"{variant}.{records}.callgrind"
    command = [sys.executable, "-m", "bench.instructions", "--child", variant, str(records), str(built)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
        check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    annotated = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--auto=no", str(out)], check=True, capture_output=True, text=True
    ).stdout
    return split(annotated)


def per_record(small: dict[str, int], large: dict[str, int], records: int) -> dict[str, float]:
    return {group: (large.get(group, 0) - small.get(group, 0)) / records for group in large}


def markdown(rows: dict[str, dict[str, float]], small: int, large: int, machine: dict[str, Any]) -> str:
    groups = [name for name, _ in GROUPS if any(row.get(name) for row in rows.values())] + ["other"]
    lines = [
        "# Instructions a record",
        "",
        f"Generated by `python -m bench.instructions`: callgrind over {small:,} and {large:,} records held in memory,",
        "the difference over the records between (bench/instructions.py says how). Instructions, not seconds: they",
        "repeat within about 1% on a busy machine as on an idle one. The client's own work is not in them.",
        "",
        f"Python {machine['python']}, fast path {fast_envelope_type()[1]}, commit {machine['commit'][:12]}.",
        "",
        "| variant | instructions a record | " + " | ".join(groups) + " |",
        "|---|---|" + "---|" * len(groups),
    ]
    for name, row in rows.items():
        cells = " | ".join(f"{round(row.get(group, 0)):,}" for group in groups)  # round(): never "-0"
        lines.append(f"| {name}: {VARIANTS[name][2]} | **{round(row['total']):,}** | {cells} |")
    clean, poison = rows.get("runner"), rows.get("runner-poison")
    if clean and poison:
        dead = round((poison["total"] - clean["total"]) * POISON_EVERY)  # one record in POISON_EVERY is poison
        lines += ["", f"A dead letter: {dead:,} instructions more than a record processed (runner-poison, runner)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2_000)
    parser.add_argument("--large", type=int, default=12_000)
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="default: all")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        configure_logging("INFO", "json")  # as the runner's console script does (LOG_LEVEL, LOG_FORMAT above)
        run_in_memory(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        sys.exit("bench.instructions needs valgrind (callgrind and callgrind_annotate) on PATH")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as workdir:
        for variant in args.variant or list(VARIANTS):
            small = _count(variant, args.small, args.large, Path(workdir))
            large = _count(variant, args.large, args.large, Path(workdir))
            rows[variant] = per_record(small, large, args.large - args.small)
            print(f"{variant}: {rows[variant]['total']:,.0f} instructions a record", flush=True)
    machine = {**describe(), **source()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "instructions.md").write_text(markdown(rows, args.small, args.large, machine))
    (RESULTS / "instructions.json").write_text(json.dumps({"machine": machine, "per_record": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
