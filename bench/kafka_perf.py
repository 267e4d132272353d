"""Variant 7: Apache Kafka's ``ConsumerPerformance`` from the broker's own jars, as the reference.

Its ``fetch.*`` figures exclude start-up and the group join, like the Python variants' first-to-last window.
CPU time and peak RSS are the JVM's whole life (``wait4``), start-up and JIT compilation included, so its CPU
per record is an upper bound.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["command", "parse"]

MAIN_CLASS = "org.apache.kafka.tools.ConsumerPerformance"


def command(classpath: str, bootstrap: str, topic: str, group: str, records: int) -> list[str]:
    return [
        "java",
        "-Xmx512m",
        "-cp",
        classpath,
        MAIN_CLASS,
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--group",
        group,
        "--num-records",
        str(records),
        "--timeout",
        "60000",
        "--command-property",
        "auto.offset.reset=earliest",
    ]


def parse(log: Path, cpu_s: float, peak_rss_kb: int) -> dict[str, Any]:
    """The result of one run from its output: the header line names the columns of the line after it."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    header_at = next((i for i, line in enumerate(lines) if line.startswith("start.time")), None)
    if header_at is None or header_at + 1 >= len(lines):
        raise RuntimeError(f"ConsumerPerformance printed no result; see {log}")
    names = [n.strip() for n in lines[header_at].split(",")]
    values = dict(zip(names, (v.strip() for v in lines[header_at + 1].split(",")), strict=False))
    consumed = int(values["data.consumed.in.nMsg"])
    fetch_s = float(values["fetch.time.ms"]) / 1000
    return {
        "variant": "kafka-perf",
        "counted": consumed,
        "records_in_window": consumed,
        "elapsed_s": fetch_s,
        "records_per_s": float(values["fetch.nMsg.sec"]),
        "cpu_us_per_record": cpu_s * 1e6 / consumed if consumed else None,
        "cpu_includes_startup": True,
        "peak_rss_kb": peak_rss_kb,
        "fetch_mb_per_s_reported": float(values["fetch.MB.sec"]),
        "rebalance_ms": float(values["rebalance.time.ms"]),
    }
