"""Draws ``latest.png`` from the harness's document: ``python bench/chart.py document.json latest.png``.

Run by the harness with the peers' virtualenv's Python, where matplotlib is installed. Left: each variant's
records/s over the raw loop's, round by round (bar at the median, whiskers at min and max). Right: the goal
ratios against their targets.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

MET, MISSED, NEUTRAL = "#2a9d8f", "#e76f51", "#8d99ae"


def _bars(axis: Any, labels: list[str], spreads: list[dict[str, float]], colours: list[str]) -> None:
    medians = [s["median"] for s in spreads]
    below = [s["median"] - s["min"] for s in spreads]
    above = [s["max"] - s["median"] for s in spreads]
    positions = range(len(labels))
    axis.barh(positions, medians, xerr=[below, above], color=colours, capsize=3)
    axis.set_yticks(list(positions), labels)
    axis.invert_yaxis()
    for y, value in zip(positions, medians, strict=True):
        axis.annotate(f"{value:.2f}", (value, y), xytext=(4, -10), textcoords="offset points", fontsize=8)


def main(source: Path, target: Path) -> None:
    document = json.loads(source.read_text())
    variants = sorted(document["variants"].items(), key=lambda item: item[1]["number"])
    shown = [(name, v) for name, v in variants if v.get("ratio_to_raw")]
    goals = [g for g in document["goals"] if g.get("ratio")]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), constrained_layout=True)
    _bars(
        left,
        [f"({v['number']}) {name}" for name, v in shown],
        [v["ratio_to_raw"] for _, v in shown],
        [NEUTRAL for _ in shown],
    )
    left.axvline(1.0, color="black", linewidth=0.8)
    left.set_xscale("log")
    left.set_xlabel("records/s relative to the raw consume() loop (1), log scale")
    left.set_title("Throughput over the raw client")
    if goals:
        _bars(
            right,
            [g["goal"] for g in goals],
            [g["ratio"] for g in goals],
            [MET if g["met"] else MISSED for g in goals],
        )
        for y, goal in enumerate(goals):
            right.plot([goal["target"]] * 2, [y - 0.45, y + 0.45], color="black", linestyle="--", linewidth=1)
        right.set_xscale("log")
        right.set_xlabel("ratio, log scale (dashed: target; green met, red missed)")
        right.set_title("Goals")
    config = document["config"]
    figure.suptitle(
        f"neotool-common consumer benchmark: {config['records']:,} records, {config['rounds']} rounds, "
        f"median with min-max ({document['machine']['cpu_model']}, {document['machine']['cores']} cores, loaded)",
        fontsize=10,
    )
    figure.savefig(target, dpi=110)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
