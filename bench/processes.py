"""Child processes of the harness: started on given cores, waited for with their resource usage, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Child", "Finished", "pin_process", "spawn", "stop", "wait"]


@dataclass(frozen=True)
class Finished:
    """How a child ended: exit code, whole-life CPU seconds and peak RSS (from ``wait4``), wall seconds."""

    returncode: int
    cpu_s: float
    peak_rss_kb: int
    wall_s: float


@dataclass
class Child:
    process: subprocess.Popen[bytes]
    started: float
    log: Path


def spawn(command: Sequence[str], *, log: Path, cores: frozenset[int], cwd: Path, env: dict[str, str]) -> Child:
    """Start ``command`` with stdout and stderr in ``log``, pinned to ``cores`` (inherited by all its threads)."""

    def pin() -> None:  # pragma: no cover - runs in the forked child
        if cores:
            os.sched_setaffinity(0, cores)

    with log.open("ab") as out:
        process = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            preexec_fn=pin,  # noqa: PLW1509 - only sched_setaffinity, no locks
        )
    return Child(process, time.perf_counter(), log)


def wait(child: Child, timeout: float) -> Finished:
    """Reap ``child`` with ``wait4``; kill it (by its PID) and raise if it outlives ``timeout``."""
    deadline = time.monotonic() + timeout
    pid = child.process.pid
    while True:
        reaped, status, usage = os.wait4(pid, os.WNOHANG)
        if reaped == pid:
            code = os.waitstatus_to_exitcode(status)
            child.process.returncode = code
            return Finished(code, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, time.perf_counter() - child.started)
        if time.monotonic() > deadline:
            stop(child)
            raise TimeoutError(f"{child.process.args!r} still running after {timeout:.0f}s; see {child.log}")
        time.sleep(0.05)


def stop(child: Child) -> None:
    """Kill ``child`` by its PID and reap it, unless it was reaped already."""
    if child.process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(child.process.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.wait4(child.process.pid, 0)
    child.process.returncode = -signal.SIGKILL


def pin_process(pid: int, cores: frozenset[int]) -> None:
    """Pin every thread of a running process (``sched_setaffinity`` of a PID moves only its main thread)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except ProcessLookupError:
            continue  # the thread ended meanwhile
