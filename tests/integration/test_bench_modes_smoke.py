"""The throughput modes' benchmark on a few records, so it never rots: it runs every variant and writes its files.

Timings are figures for bench/results, not pass/fail; what is asserted is that every variant handled every record
and that the results have their shape.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.throughput_modes import CPU_VARIANTS, IO_VARIANTS, main

from neotool_common.testing.kafka import KafkaEndpoint

pytestmark = pytest.mark.kafka


def test_every_variant_runs_and_the_results_have_their_shape(kafka: KafkaEndpoint, tmp_path: Path) -> None:
    argv = ["--io-records", "200", "--keys", "20", "--cpu-records", "1000", "--rounds", "1"]
    assert main([*argv, "--bootstrap", kafka.bootstrap_servers, "--out-dir", str(tmp_path)]) == 0

    document = json.loads((tmp_path / "throughput-modes.json").read_text())
    for workload, variants, records in (("io_bound", IO_VARIANTS, 200), ("cpu_bound", CPU_VARIANTS, 1000)):
        assert set(document[workload]["summary"]) == {variant.name for variant in variants}
        runs = document[workload]["runs"]
        assert {run["variant"] for run in runs} == {variant.name for variant in variants}
        assert all(run["records"] == records and run["seconds"] > 0 for run in runs)
    assert len(document["goals"]) == 10
    markdown = (tmp_path / "throughput-modes.md").read_text()
    assert "**22.2 s**" in markdown, "Parallel Consumer's published figures beside ours"
    assert "## Goals" in markdown
