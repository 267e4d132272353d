"""One benchmark session: the broker's topics, the cores, and each variant run in a process of its own."""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import kafka_perf, pyspy
from bench.catalogue import Interpreter, Variant
from bench.prefill import Topic, prefill
from bench.processes import Child, pin_process, spawn, stop, wait
from bench.records import poison_count
from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.policies.retry_topics import retry_topics
from neotool_common.testing.kafka import KafkaEndpoint, kafka_classpath

__all__ = ["Session", "Settings"]

ROOT = Path(__file__).resolve().parent.parent
# The latency runs send this long before the measured part: the producer's own start-up delays its first records.
LATENCY_WARMUP_S = 1.0


@dataclass(frozen=True)
class Settings:
    records: int
    peers_python: Path
    latency_rate: float
    latency_seconds: float


class Session:
    """Runs variants against one broker; pins the broker to one core and the variants to another."""

    def __init__(
        self,
        settings: Settings,
        endpoint: KafkaEndpoint,
        broker_pid: int | None,
        logs: Path,
        say: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.endpoint = endpoint
        self.logs = logs
        self.say = say
        self.suffix = uuid.uuid4().hex[:6]
        self.broker_pid = broker_pid
        self.broker_cores, self.consumer_cores = plan_cores(broker_pid)
        if broker_pid is not None and self.broker_cores:
            pin_process(broker_pid, self.broker_cores)
        self.topics: dict[bool, Topic] = {}
        self._classpath = ""

    def describe_pinning(self) -> dict[str, Any]:
        return {"broker_cores": sorted(self.broker_cores), "variant_cores": sorted(self.consumer_cores)}

    # -- topics ------------------------------------------------------------------------------------

    def prefill(self, name: str, records: int, *, poison: bool, partitions: int = 1) -> Topic:
        started = time.perf_counter()
        topic = prefill(self.endpoint, f"bench.{name}.{self.suffix}", records, poison=poison, partitions=partitions)
        if poison:
            self.endpoint.create_topic(dlq_topic_for(topic.name), 1)
        self.say(f"pre-filled {topic.name}: {records:,} records in {time.perf_counter() - started:.1f}s")
        return topic

    # -- throughput ----------------------------------------------------------------------------------

    def run(
        self, variant: Variant, label: str, topic: Topic, *, profile: Path | None = None, extra: Sequence[str] = ()
    ) -> dict[str, Any]:
        """One throughput run of ``variant`` over all of ``topic``; a dict with ``error`` when it failed."""
        group, out, log = self._names(variant, label)
        topic = topic.head(variant.max_records)
        command = [*self.command(variant, topic.name, group, topic.records, topic.poison, out), *extra]
        if profile is not None:
            command = [*pyspy.command(profile), *command]
        env = {**child_env(), **dict(variant.env), **self._tiers(variant, topic.name, group)}
        child = spawn(command, log=log, cores=self.consumer_cores, cwd=ROOT, env=env)
        return self._finish(variant, child, out, topic)

    def _tiers(self, variant: Variant, source: str, group: str) -> dict[str, str]:
        """A variant with delay tiers: its fresh group's tier topics, created before it starts, and their env."""
        if not variant.retry_delays_ms:
            return {}
        for name in retry_topics(source, group, variant.retry_delays_ms):
            self.endpoint.create_topic(name, 1)
        env = {"RETRY_TOPIC_DELAYS_MS": ",".join(str(delay) for delay in variant.retry_delays_ms)}
        if variant.failing:
            env["BENCH_FAIL_ONCE"] = "1"
        return env

    def _names(self, variant: Variant, label: str) -> tuple[str, Path, Path]:
        group = f"bench-{variant.name}-{label}-{uuid.uuid4().hex[:6]}"
        return group, self.logs / f"{variant.name}-{label}.json", self.logs / f"{variant.name}-{label}.log"

    def command(
        self, variant: Variant, topic: str, group: str, expected: int, invalid: int, out: Path, mode: str = "throughput"
    ) -> list[str]:
        bootstrap = self.endpoint.bootstrap_servers
        if variant.interpreter is Interpreter.JAVA:
            self._classpath = self._classpath or kafka_classpath()
            return kafka_perf.command(self._classpath, bootstrap, topic, group, expected)
        python = str(self.settings.peers_python) if variant.interpreter is Interpreter.PEERS else sys.executable
        arguments = {
            "bootstrap": bootstrap,
            "topic": topic,
            "group": group,
            "expected": expected,
            "invalid": invalid,
            "out": out,
            "mode": mode,
        }
        return [python, "-m", variant.module, *(f"--{k}={v}" for k, v in arguments.items())]

    def _finish(self, variant: Variant, child: Child, out: Path, topic: Topic) -> dict[str, Any]:
        try:
            finished = wait(child, timeout=60 + topic.records / 1000)
        except TimeoutError as exc:
            return failure(variant, str(exc), child.log)
        if finished.returncode != 0:
            return failure(variant, f"exit code {finished.returncode}", child.log)
        if variant.interpreter is Interpreter.JAVA:
            result = kafka_perf.parse(child.log, finished.cpu_s, finished.peak_rss_kb)
        else:
            result = json.loads(out.read_text())
        result.update(process_cpu_s=finished.cpu_s, process_wall_s=finished.wall_s)
        result = derive(result, topic)
        if variant.failing:  # every record that failed once came back from the tier and was processed
            expected = poison_count(topic.records)
            result["complete"] &= result.get("tier_failed") == result.get("tier_returned") == expected
        return result

    # -- latency -------------------------------------------------------------------------------------

    def latency(self, variant: Variant) -> dict[str, Any]:
        """``variant`` reading a topic written at a fixed rate; latency from send to ``process()``."""
        warmup = int(self.settings.latency_rate * LATENCY_WARMUP_S)
        count = warmup + int(self.settings.latency_rate * self.settings.latency_seconds)
        topic = self.endpoint.create_topic(f"bench.latency.{variant.name}.{self.suffix}", 1)
        group, out, log = self._names(variant, "latency")
        command = [*self.command(variant, topic, group, count, 0, out, mode="latency"), f"--warmup={warmup}"]
        consumer = spawn(command, log=log, cores=self.consumer_cores, cwd=ROOT, env=child_env())
        try:
            self._wait_for_assignment(group, consumer)
        except (TimeoutError, RuntimeError) as exc:
            stop(consumer)
            return failure(variant, str(exc), log)
        time.sleep(1.0)  # let the first fetch settle, so the first records do not measure the join
        producer = spawn(
            [
                sys.executable,
                "-m",
                "bench.paced_producer",
                f"--bootstrap={self.endpoint.bootstrap_servers}",
                f"--topic={topic}",
                f"--rate={self.settings.latency_rate}",
                f"--count={count}",
            ],
            log=self.logs / f"producer-{variant.name}.log",
            cores=self.broker_cores,
            cwd=ROOT,
            env=child_env(),
        )
        sent = wait(producer, timeout=60 + 3 * self.settings.latency_seconds)
        if sent.returncode != 0:
            return failure(variant, f"paced producer exit code {sent.returncode}", producer.log)
        finished = wait(consumer, timeout=60)
        if finished.returncode != 0:
            return failure(variant, f"exit code {finished.returncode}", log)
        result = json.loads(out.read_text())
        return {
            "variant": variant.name,
            "rate": self.settings.latency_rate,
            "seconds": self.settings.latency_seconds,
            "sent": count,
            "warmup_records": warmup,
            "counted": result["counted"],
            **result.get("latency", {}),
        }

    def _wait_for_assignment(self, group: str, consumer: Child, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(consumer):
                raise RuntimeError("the consumer exited before it joined its group")
            try:
                description = self.endpoint.admin.describe_consumer_groups([group], request_timeout=5)[group].result()
            except Exception:  # noqa: BLE001 - the group does not exist yet
                description = None
            if description is not None and any(
                m.assignment is not None and m.assignment.topic_partitions for m in description.members
            ):
                return
            time.sleep(0.1)
        raise TimeoutError(f"group {group} had no assignment after {timeout:.0f}s")


def plan_cores(broker_pid: int | None) -> tuple[frozenset[int], frozenset[int]]:
    """Broker on the first allowed core, variants on the others; no pinning without a local broker or 2 cores."""
    allowed = sorted(os.sched_getaffinity(0))
    if broker_pid is None or len(allowed) < 2:
        return frozenset(), frozenset()
    return frozenset(allowed[:1]), frozenset(allowed[1:])


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def alive(child: Child) -> bool:
    """True until the child exits (a zombie awaiting ``wait4`` counts as exited)."""
    try:
        stat = Path(f"/proc/{child.process.pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def failure(variant: Variant, error: str, log: Path) -> dict[str, Any]:
    try:
        tail = log.read_text(errors="replace").splitlines()[-30:]
    except OSError:
        tail = []
    return {"variant": variant.name, "error": error, "log_tail": tail}


def derive(result: dict[str, Any], topic: Topic) -> dict[str, Any]:
    """Figures every report needs, from what the variant measured and what the topic holds."""
    rate = result.get("records_per_s")
    result["expected"] = topic.records
    result["mb_per_s"] = rate * topic.mean_value_bytes / 1e6 if rate else None
    result["peak_rss_mb"] = result["peak_rss_kb"] / 1024
    dead = result.get("dead_lettered", 0)
    result["complete"] = result["counted"] == topic.records and (not topic.poison or dead == topic.poison)
    commits = result.get("commits_in_window")
    if commits is not None and result.get("elapsed_s"):
        result["commits_per_s"] = commits / result["elapsed_s"]
        result["records_per_commit"] = result["records_in_window"] / commits if commits else None
    return result
