"""The machine and the software versions a result was measured with."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import confluent_kafka

import neotool_common
from neotool_common.testing.kafka import KAFKA_VERSION

__all__ = ["describe", "peer_versions", "source"]

ROOT = Path(__file__).resolve().parent.parent


def describe() -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(_mem_total_kib() / 1024**2, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.__version__,
        "librdkafka": confluent_kafka.libversion()[0],
        "kafka": KAFKA_VERSION,
        "java": _java_version(),
    }


def source() -> dict[str, Any]:
    """The commit the code was measured at, and the files of ``src/`` that differed from it."""
    commit = _git("rev-parse", "HEAD").strip()
    changed = [line[3:] for line in _git("status", "--porcelain", "--", "src").splitlines() if line.strip()]
    return {
        "commit": commit or "unknown",
        "uncommitted_src_changes": changed,
        "package": str(Path(neotool_common.__file__).parent),
    }


def _git(*args: str) -> str:
    try:
        command = ["git", "-C", str(ROOT), *args]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    except OSError:
        return ""
    return result.stdout if result.returncode == 0 else ""


def peer_versions(python: Path) -> dict[str, str]:
    """Versions of the peer frameworks installed in the peers' virtualenv (empty when there is none)."""
    if not python.exists():
        return {}
    script = (
        "import importlib.metadata as m, json\n"
        "print(json.dumps({p: m.version(p) for p in ('faststream', 'sentry-arroyo', 'confluent-kafka')}))"
    )
    result = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=False, timeout=60)
    if result.returncode != 0:
        return {}
    return dict(json.loads(result.stdout))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_kib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _java_version() -> str:
    try:
        result = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False, timeout=30)
    except OSError:
        return "not found"
    first = (result.stderr or result.stdout).splitlines()
    return first[0].strip() if first else "unknown"
