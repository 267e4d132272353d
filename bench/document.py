"""The result files: ``latest.json`` (everything), ``latest.md`` (the tables) and ``latest.png`` (the ratios)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import machine, markdown
from bench.catalogue import Variant
from bench.prefill import Topic
from bench.summary import commit_goal, goal_results, ratio, rss_goals, scaling_goal, summarize_variant

__all__ = ["build_document", "write_outputs"]

SCHEMA_VERSION = 1
CHART_SCRIPT = Path(__file__).with_name("chart.py")


def _label(variant: Variant, records: int) -> str:
    if variant.max_records and variant.max_records < records:
        return f"{variant.label}; reads the topic's first {variant.max_records:,} records"
    return variant.label


def build_document(
    *,
    args: argparse.Namespace,
    variants: Sequence[Variant],
    topics: Sequence[Topic],
    rounds: dict[str, list[dict[str, Any]]],
    latency: list[dict[str, Any]],
    rss_check: dict[str, Any] | None,
    profiles: dict[str, str],
    stages: dict[str, Any],
    scaling: dict[str, Any] | None,
    pinning: dict[str, Any],
    peers_python: Path,
    default_records: int,
    load_at_start: list[float],
) -> dict[str, Any]:
    summaries = {
        v.name: {"number": v.number, "label": _label(v, args.records), **summarize_variant(rounds[v.name])}
        for v in variants
    }
    for name, summary in summaries.items():
        summary["ratio_to_raw"] = ratio(rounds, name, "raw")
    host = machine.describe()
    host["load_average_at_start"] = load_at_start
    host["load_average_at_end"] = list(os.getloadavg())
    host["peers"] = machine.peer_versions(peers_python)
    return {
        "schema_version": SCHEMA_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "note": args.note,
        "machine": host,
        "source": machine.source(),
        "config": {
            "records": args.records,
            "default_records": default_records,
            "rounds": args.rounds,
            "topics": [
                {"name": t.name, "records": t.records, "poison": t.poison, "mean_value_bytes": t.mean_value_bytes}
                for t in topics
            ],
            "pinning": pinning,
            "latency_rate": args.latency_rate,
            "latency_seconds": args.latency_seconds,
        },
        "variants": summaries,
        "goals": [
            *goal_results(rounds),
            commit_goal(summaries.get("runner")),
            *rss_goals(rss_check),
            scaling_goal(scaling),
        ],
        "latency": latency,
        "rss_check": rss_check,
        "rounds": rounds,
        "profiles": profiles,
        "stages": stages,
        "scaling": scaling,
    }


def write_outputs(document: dict[str, Any], out_dir: Path, peers_python: Path, say: Callable[[str], None]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    chart = out_dir / "latest.png"
    document["chart"] = _chart(document, chart, peers_python, say)
    (out_dir / "latest.json").write_text(json.dumps(document, indent=2) + "\n")
    (out_dir / "latest.md").write_text(markdown.render(document))
    say(f"wrote {out_dir / 'latest.json'}, {out_dir / 'latest.md'}" + (f", {chart}" if document["chart"] else ""))


def _chart(document: dict[str, Any], target: Path, peers_python: Path, say: Callable[[str], None]) -> str | None:
    """Draw the chart with matplotlib from the peers' virtualenv (it is no dependency of the project)."""
    if not peers_python.exists():
        say(f"no chart: {peers_python} does not exist (`make bench` creates it)")
        return None
    source = target.with_suffix(".chart-input.json")
    source.write_text(json.dumps(document))
    try:
        result = subprocess.run(
            [str(peers_python), str(CHART_SCRIPT), str(source), str(target)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    finally:
        source.unlink(missing_ok=True)
    if result.returncode != 0:
        say(f"no chart: {result.stderr.strip().splitlines()[-1:] or result.returncode}")
        return None
    return target.name
