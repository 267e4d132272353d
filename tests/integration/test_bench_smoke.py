"""The benchmark harness on a tiny topic, so it never rots: it runs, writes its files, and counts every record.

Timings are not asserted (they are figures for bench/results, not pass/fail); the structure of what the harness
writes and the record counts are.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.catalogue import IN_TREE
from bench.run import PEERS_PYTHON, main

from neotool_common.testing.kafka import KafkaEndpoint

pytestmark = pytest.mark.kafka

RECORDS = 2000


def test_in_tree_variants_count_every_record_and_results_have_their_shape(kafka: KafkaEndpoint, tmp_path: Path) -> None:
    # The chart needs matplotlib from the peers' virtualenv; where `make bench` made it, draw the chart too.
    peers = PEERS_PYTHON if PEERS_PYTHON.exists() else tmp_path / "no-peers-venv"
    argv = ["--records", str(RECORDS), "--rounds", "1", "--variants", ",".join(IN_TREE)]
    argv += ["--bootstrap", kafka.bootstrap_servers, "--out-dir", str(tmp_path), "--peers-python", str(peers)]
    argv += ["--latency-seconds", "1", "--scaling"]

    assert main(argv) == 0

    document = json.loads((tmp_path / "latest.json").read_text())
    assert set(document["variants"]) == set(IN_TREE)
    for name, summary in document["variants"].items():
        assert summary["complete"], name
        assert summary["records_per_s"]["median"] > 0, name
        assert summary["cpu_us_per_record"]["median"] > 0, name
        assert summary["peak_rss_mb"]["median"] > 0, name
        assert summary["ratio_to_raw"]["median"] > 0, name
        [run] = document["rounds"][name]
        assert run["counted"] == RECORDS, name
    poison = document["rounds"]["runner-poison"][0]
    assert poison["dead_lettered"] == RECORDS // 100  # 1% poison
    assert poison["processed"] + poison["dead_lettered"] == RECORDS
    # 1% of the clean topic failed once, went through the tier, and every one of them came back and was processed
    tier = document["rounds"]["runner-tier-fail"][0]
    assert tier["tier_failed"] == tier["tier_returned"] == RECORDS // 100
    assert tier["dead_lettered"] == 0
    assert tier["processed"] == RECORDS
    assert "## Retry tiers" in (tmp_path / "latest.md").read_text()
    assert {g["goal"] for g in document["goals"]} >= {"runner (3) >= 0.9 x hand-written (2)"}
    assert all(g["met"] is None or isinstance(g["met"], bool) for g in document["goals"])
    assert {run["variant"] for run in document["latency"]} == {"handwritten", "runner"}
    for run in document["latency"]:
        assert run["counted"] == run["sent"]
        assert 0 < run["p50_ms"] <= run["p99_ms"]
    scaling = document["scaling"]
    assert set(scaling["runs"]) == {"1", "2"}
    for count, run in scaling["runs"].items():
        assert run["complete"], count
        assert len(run["members"]) == int(count)
        # 2,000 records on a broker without a join delay: one member may read them all before the other joins.
        assert any(m["records_per_s"] and m["cpu_cores"] for m in run["members"]), count
    assert scaling["speedup"] > 0
    assert "## Beyond one core" in (tmp_path / "latest.md").read_text()
    for key in ("cpu_model", "cores", "ram_gib", "python", "confluent_kafka", "librdkafka", "kafka"):
        assert document["machine"][key], key
    table = (tmp_path / "latest.md").read_text()
    assert "| 3 | **runner**" in table
    assert "## Goals" in table
    assert (tmp_path / "latest.png").exists() == PEERS_PYTHON.exists()
