"""Beyond one core: one and two runner processes in one consumer group over a two-partition topic.

Python runs one core per process, so a consumer scales out with members of its group, one partition or more
each. The run: a topic of N records over two partitions (written round-robin), then the runner (variant 3)
with one process, and with two processes in one fresh group. No pinning here: the broker and the processes
share both cores, as they would on a node. Both processes are held at ``setup()`` until each is there, so
they join the group together; the harness stops them (SIGTERM) once the group's committed offsets reach the
end of both partitions.

Each process measures its own window, from its first record to the last record of the last partition it
finished. Reported: records/s and CPU of each process in its window, the group's records/s (all records over
the span from the first process's first record to the last process's last), and the broker's CPU over that
span, sampled from ``/proc``. The group's span includes the rebalance that hands the second partition over.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from bench.catalogue import VARIANTS
from bench.processes import Child, pin_process, spawn, stop, wait
from bench.session import ROOT, Session, child_env, failure

__all__ = ["PARTITIONS", "run_scaling"]

PARTITIONS = 2
SAMPLE_EVERY_S = 0.1
_TICKS = os.sysconf("SC_CLK_TCK")


def run_scaling(session: Session, records: int) -> dict[str, Any]:
    """Runs 1 and then 2 processes over the same topic (a fresh group each); the figures of both."""
    topic = session.prefill("scaling", records, poison=False, partitions=PARTITIONS)
    if session.broker_pid is not None:
        pin_process(session.broker_pid, frozenset(os.sched_getaffinity(0)))  # the broker shares the cores here
    try:
        runs = {str(n): _run_group(session, topic.name, records, n) for n in (1, 2)}
    finally:
        if session.broker_pid is not None and session.broker_cores:
            pin_process(session.broker_pid, session.broker_cores)
    one, two = runs["1"].get("records_per_s"), runs["2"].get("records_per_s")
    return {
        "records": records,
        "partitions": PARTITIONS,
        "topic": topic.name,
        "runs": runs,
        "speedup": two / one if one and two else None,
    }


def _run_group(session: Session, topic: str, records: int, processes: int) -> dict[str, Any]:
    runner = next(v for v in VARIANTS if v.name == "runner")
    barrier = session.logs / f"scaling-{processes}-barrier"
    barrier.mkdir()
    group = f"bench-scaling-{processes}-{session.suffix}"
    ends = ",".join(str(n - 1) for n in _per_partition(records))
    env = {**child_env(), "BENCH_GROUP_BARRIER": str(barrier), "BENCH_GROUP_MEMBERS": str(processes)}
    env["BENCH_PARTITION_ENDS"] = ends
    children: list[tuple[Child, Path]] = []
    for index in range(processes):
        out = session.logs / f"scaling-{processes}-{index}.json"
        command = session.command(runner, topic, group, records, 0, out)
        log = session.logs / f"scaling-{processes}-{index}.log"
        children.append((spawn(command, log=log, cores=frozenset(), cwd=ROOT, env=env), out))
    sampler = _BrokerSampler(session.broker_pid)
    try:
        _release_when_ready(barrier, processes, [c for c, _ in children])
        sampler.start()
        _wait_for_commits(session, group, topic, records, [c for c, _ in children])
    except (TimeoutError, RuntimeError) as exc:
        for child, _ in children:
            stop(child)
        return failure(runner, str(exc), children[0][0].log)
    finally:
        sampler.stop()
    for child, _ in children:
        os.kill(child.process.pid, signal.SIGTERM)
    members = []
    for child, out in children:
        try:
            finished = wait(child, timeout=60)
        except TimeoutError as exc:
            finished = None
            error = str(exc)
        if finished is None or finished.returncode != 0 or not out.exists():
            for other, _ in children:
                stop(other)  # no member outlives the run
            return failure(runner, error if finished is None else f"exit code {finished.returncode}", child.log)
        members.append({**json.loads(out.read_text()), "process_cpu_s": finished.cpu_s})
    return _group_figures(members, records, sampler)


def _per_partition(records: int) -> list[int]:
    """Records in each partition when ``records`` are written round-robin (bench/prefill.py)."""
    return [len(range(p, records, PARTITIONS)) for p in range(PARTITIONS)]


def _release_when_ready(barrier: Path, processes: int, children: list[Child], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(list(barrier.glob("ready-*"))) < processes:
        if any(c.process.poll() is not None for c in children):
            raise RuntimeError("a runner process exited before it reached setup()")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{processes} runner processes not at setup() after {timeout:.0f}s")
        time.sleep(0.02)
    (barrier / "go").touch()


def _wait_for_commits(
    session: Session, group: str, topic: str, records: int, children: list[Child], timeout: float = 300.0
) -> None:
    """Until the group's committed offsets are at the end of every partition."""
    ends = _per_partition(records)
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(c.process.poll() is not None for c in children):
            raise RuntimeError("a runner process exited before the group reached the end of the topic")
        try:
            result = session.endpoint.admin.list_consumer_group_offsets(request)[group].result()
            committed = {tp.partition: tp.offset for tp in result.topic_partitions}
        except Exception:  # noqa: BLE001 - the group has not committed yet
            committed = {}
        if all(committed.get(p, -1) >= end for p, end in enumerate(ends)):
            return
        time.sleep(0.2)
    raise TimeoutError(f"group {group} did not commit the end of {topic} in {timeout:.0f}s")


class _BrokerSampler:
    """The broker JVM's CPU seconds, sampled with the monotonic clock every 0.1 s on a thread."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-cpu", daemon=True)

    def start(self) -> None:
        if self.pid is not None:
            self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        assert self.pid is not None
        while not self._done.is_set():
            fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
            self.samples.append((time.perf_counter(), (int(fields[11]) + int(fields[12])) / _TICKS))
            self._done.wait(SAMPLE_EVERY_S)

    def cores_between(self, start: float, end: float) -> float | None:
        """The broker's CPU over ``[start, end]`` in cores (CPU seconds per second), from the nearest samples."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        (t0, cpu0), (t1, cpu1) = inside[0], inside[-1]
        return (cpu1 - cpu0) / (t1 - t0)


def _group_figures(members: list[dict[str, Any]], records: int, sampler: _BrokerSampler) -> dict[str, Any]:
    for member in members:
        window = member.get("elapsed_s")
        cpu = member.get("cpu_us_per_record")
        member["cpu_cores"] = cpu * member["records_in_window"] / 1e6 / window if cpu and window else None
    # A member that got no record (the group gave everything to the other before it joined) has no window.
    working = [m for m in members if "window_start_s" in m]
    start = min(m["window_start_s"] for m in working)
    end = max(m["window_end_s"] for m in working)
    counted = sum(m["counted"] for m in members)
    return {
        "processes": len(members),
        "records_per_s": records / (end - start) if end > start else None,
        "sum_of_process_rates": sum(m.get("records_per_s") or 0 for m in members),
        "span_s": end - start,
        "counted": counted,
        "complete": counted >= records,
        "broker_cpu_cores": sampler.cores_between(start, end),
        "members": [
            {
                "records": m["counted"],
                "records_per_s": m.get("records_per_s"),
                "cpu_us_per_record": m.get("cpu_us_per_record"),
                "cpu_cores": m["cpu_cores"],
                "peak_rss_mb": m["peak_rss_kb"] / 1024 if "peak_rss_kb" in m else None,
            }
            for m in members
        ],
    }
