"""``latest.md``: the harness's document as tables a person reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["render"]

PROFILE_LINES = 14


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _spread(spread: Mapping[str, float] | None, digits: int = 0) -> str:
    if not spread:
        return "-"
    return f"{_num(spread['median'], digits)} ({_num(spread['min'], digits)}-{_num(spread['max'], digits)})"


def _machine(document: Mapping[str, Any]) -> list[str]:
    host = document["machine"]
    peers = ", ".join(f"{k} {v}" for k, v in host.get("peers", {}).items()) or "not installed"
    load = "/".join(f"{x:.1f}" for x in host["load_average_at_start"])
    load_end = "/".join(f"{x:.1f}" for x in host["load_average_at_end"])
    pinning = document["config"]["pinning"]
    pinned = (
        f"broker on CPU {pinning['broker_cores']}, each variant on CPU {pinning['variant_cores']}"
        if pinning["broker_cores"]
        else "none (external broker or a single core)"
    )
    return [
        "| | |",
        "|---|---|",
        f"| CPU | {host['cpu_model']}, {host['cores']} cores |",
        f"| RAM | {host['ram_gib']} GiB |",
        f"| OS | {host['os']} |",
        f"| Python | {host['python']} |",
        f"| confluent-kafka / librdkafka | {host['confluent_kafka']} / {host['librdkafka']} |",
        f"| Kafka (broker and ConsumerPerformance) | {host['kafka']}, {host['java']} |",
        f"| peers' virtualenv | {peers} |",
        f"| pinning | {pinned} |",
        f"| load average (1/5/15 min) | {load} at start, {load_end} at end |",
        f"| source | {_source(document.get('source', {}))} |",
    ]


def _source(source: Mapping[str, Any]) -> str:
    commit = str(source.get("commit", "unknown"))[:12]
    changed = source.get("uncommitted_src_changes") or []
    return f"commit {commit}" + (f" plus uncommitted changes to {', '.join(changed)}" if changed else "")


def _throughput(document: Mapping[str, Any]) -> list[str]:
    rows = [
        "| # | variant | records/s | MB/s | CPU µs/record | peak RSS MB | x raw (1) | every record |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in sorted(document["variants"].items(), key=lambda item: item[1]["number"]):
        ratio = v.get("ratio_to_raw")
        rows.append(
            f"| {v['number']} | **{name}**: {v['label']} | {_spread(v['records_per_s'])} | {_spread(v['mb_per_s'], 1)}"
            f" | {_spread(v['cpu_us_per_record'], 1)} | {_spread(v['peak_rss_mb'])} | {_spread(ratio, 2)}"
            f" | {'yes' if v['complete'] else '**no**'} |"
        )
    return rows


def _goals(document: Mapping[str, Any]) -> list[str]:
    rows = [
        "| goal | measured (records/s) | target | verdict | the same from CPU µs/record |",
        "|---|---|---|---|---|",
    ]
    for goal in document["goals"]:
        measured = _spread(goal["ratio"], 2) if goal.get("ratio") else _num(goal["value"], 2)
        verdict = "not measured" if goal["met"] is None else "met" if goal["met"] else f"**{goal['shortfall']}**"
        unit = goal.get("unit", "")
        target = f"{'≤' if unit else '≥'} {goal['target']:.2f}{(' ' + unit) if unit else ''}"
        by_cpu = _spread(goal["cpu_ratio"], 2) if goal.get("cpu_ratio") else "-"
        rows.append(f"| {goal['goal']} | {measured} | {target} | {verdict} | {by_cpu} |")
    rows += [
        "",
        "The verdict is on records/s, as the issue asks. The last column is the ratio of CPU per record (the "
        "denominator's over the numerator's): what the ratio would be if neither variant ever waited for a core. "
        "On a machine shared with other work the two differ, and the CPU figure is the steadier one.",
    ]
    return rows


def _commits(document: Mapping[str, Any]) -> list[str]:
    rows = ["| variant | commits/s in the measured window | records per commit |", "|---|---|---|"]
    for name, v in document["variants"].items():
        if v.get("commits_per_s"):
            rows.append(f"| {name} | {_spread(v['commits_per_s'], 2)} | {_spread(v['records_per_commit'])} |")
    return rows if len(rows) > 2 else []


def _tiers(document: Mapping[str, Any]) -> list[str]:
    """The failing-tier variant: its window is the source partition's; the run ends once every record is back."""
    runs = document["rounds"].get("runner-tier-fail") or []
    if not runs:
        return []
    rows = [
        "`runner-tier-fail` (4t): records/s is the source partition's (its first record to its last). The run ends "
        "only once every record that failed came back from the tier and was processed; the last column is the time "
        "from the first source record to that point (the tier's delay included).",
        "",
        "| round | source records/s | failed once | came back, processed | first record to the last one back, s |",
        "|---|---|---|---|---|",
    ]
    for run in runs:
        if "error" in run:
            rows.append(f"| {run.get('round', '-')} | failed: {run['error']} | | | |")
            continue
        rows.append(
            f"| {run['round']} | {_num(run.get('records_per_s'))} | {_num(run.get('tier_failed'))} "
            f"| {_num(run.get('tier_returned'))} | {_num(run.get('all_back_s'), 2)} |"
        )
    return rows


def _latency(document: Mapping[str, Any]) -> list[str]:
    if not document["latency"]:
        return []
    config = document["config"]
    rows = [
        f"Records produced at {config['latency_rate']:,.0f}/s for {config['latency_seconds']:g} s by a paced producer "
        "in its own process; latency is the wall clock in `process()` minus the one just before `produce()`. "
        f"The first {config['latency_rate'] * 1:,.0f} records (one second, the producer's start-up) are left out.",
        "",
        "| variant | p50 ms | p99 ms | max ms | records seen / sent |",
        "|---|---|---|---|---|",
    ]
    for run in document["latency"]:
        if "error" in run:
            rows.append(f"| {run['variant']} | failed: {run['error']} | | | |")
            continue
        rows.append(
            f"| {run['variant']} | {_num(run.get('p50_ms'), 1)} | {_num(run.get('p99_ms'), 1)} "
            f"| {_num(run.get('max_ms'), 1)} | {run['counted']:,} / {run['sent']:,} |"
        )
    return rows


def _rss(document: Mapping[str, Any]) -> list[str]:
    check = document.get("rss_check")
    if not check:
        return ["Not run (`--rss-check`). Peak RSS per round is in the throughput table."]
    n = check["records"]
    at_n, at_10n = check["at_n"], check["at_10n"]
    samples = at_10n.get("rss_samples", [])
    step = max(1, len(samples) // 10)
    along = ", ".join(f"{handled:,}: {mb:.0f}" for handled, mb in samples[::step])
    return [
        "The runner (3) over the clean topic and over a topic ten times as long.",
        "",
        "| records | peak RSS MB | records/s |",
        "|---|---|---|",
        f"| {n:,} | {_num(at_n.get('peak_rss_mb'))} | {_num(at_n.get('records_per_s'))} |",
        f"| {10 * n:,} | {_num(at_10n.get('peak_rss_mb'))} | {_num(at_10n.get('records_per_s'))} |",
        "",
        f"Peak RSS at 10 x N over N: {_num(check.get('growth'), 2)}. Along the 10 x N run, RSS at the end over RSS "
        f"once 10% of the records were read: {_num(check.get('growth_along_10n'), 2)}.",
        "",
        f"RSS along the 10 x N run (records read: MB): {along or 'no samples'}.",
    ]


STAGE_COLUMNS = ("client threads", "client", "decode", "validate", "bookkeeping", "metrics", "process()")


def _stages(document: Mapping[str, Any]) -> list[str]:
    """Microseconds per record by stage, from the py-spy profiles (bench/pyspy.py ``stage_budget``)."""
    stages = document.get("stages") or {}
    if not stages:
        return ["No profile was taken (`--profile`)."]
    rows = [
        "Microseconds of CPU per record in the profiled run of each variant. *client threads* are librdkafka's "
        "fetch and decompression threads, which py-spy does not sample: taken as the raw loop's (1) CPU per record "
        "in this run. The rest of the process's CPU per record (`getrusage`) is split by the shares of the Python "
        "thread's py-spy samples (500 Hz), each sample going to the innermost frame that names a stage; time in C "
        "counts for the function that called it. *client* is `consume()` and the record's accessors; *decode* "
        "the fast path (msgspec and its proofs) or the strict decoder; *validate* `ingested_at`, the payload "
        "schema or model; *bookkeeping* the batch loop, the record handler, offsets and the `Message`. The "
        "compiled fast path has no Python frames: its time, its payload checks included, is the reader's own "
        "(`EnvelopeReader.read`), counted as *decode*, with the `Message` it builds.",
        "",
        "| variant | " + " | ".join(STAGE_COLUMNS) + " | total CPU |",
        "|---|" + "---|" * (len(STAGE_COLUMNS) + 1),
    ]
    for name, budget in sorted(stages.items()):
        cells = " | ".join(_num(budget.get(column), 2) for column in STAGE_COLUMNS)
        rows.append(f"| {name} | {cells} | {_num(budget.get('cpu_us_per_record'), 2)} |")
    return rows


def _scaling(document: Mapping[str, Any]) -> list[str]:
    scaling = document.get("scaling")
    if not scaling:
        return ["Not run (`--scaling`)."]
    rows = [
        f"The runner (3) over `{scaling['topic']}` ({scaling['records']:,} records, {scaling['partitions']} "
        "partitions), one process and then two processes in one group; no pinning (the broker and the processes "
        "share the cores). Group records/s: every record over the span from the first record of any member to the "
        "last of any (the hand-over rebalance included). CPU in cores: CPU seconds per second of the window.",
        "",
        "| processes | group records/s | sum of members' records/s | each member: records/s, CPU cores, "
        "µs/record | broker CPU cores | every record |",
        "|---|---|---|---|---|---|",
    ]
    for count, run in scaling["runs"].items():
        if "error" in run:
            rows.append(f"| {count} | failed: {run['error']} | | | | |")
            continue
        each = "; ".join(
            f"{_num(m['records_per_s'])}, {_num(m['cpu_cores'], 2)}, {_num(m['cpu_us_per_record'], 1)}"
            if m["records"]
            else "no record (joined after the other had read everything)"
            for m in run["members"]
        )
        rows.append(
            f"| {count} | {_num(run['records_per_s'])} | {_num(run['sum_of_process_rates'])} | {each} "
            f"| {_num(run['broker_cpu_cores'], 2)} | {'yes' if run['complete'] else '**no**'} |"
        )
    rows += ["", f"Two processes over one: {_num(scaling.get('speedup'), 2)} x."]
    return rows


def _notes(document: Mapping[str, Any]) -> list[str]:
    config = document["config"]
    notes = [document["note"]] if document.get("note") else []
    if config["records"] != config["default_records"]:
        notes.append(
            f"Run with `--records {config['records']}`, not the default {config['default_records']:,}, "
            "to keep the run short on a shared machine."
        )
    return ["\n>\n".join(f"> {note}" for note in notes), ""] if notes else []


def render(document: Mapping[str, Any]) -> str:
    config = document["config"]
    topics = ", ".join(
        f"`{t['name']}` ({t['records']:,} records, {t['poison']:,} poison, {t['mean_value_bytes']:.0f} B mean value)"
        for t in config["topics"]
    )
    parts = [
        "# Consumer benchmark: latest results",
        "",
        f"Generated by `bench/run.py` on {document['created_at']}: {config['records']:,} records per topic, "
        f"{config['rounds']} rounds in rotating order; medians with (min-max) over the rounds. Ratios are taken "
        "within each round. The machine was shared with other work while this ran, so absolute figures are "
        "noisy; read the ratios.",
        "",
        *_notes(document),
        f"Topics: {topics}.",
        "",
        "## Machine",
        "",
        *_machine(document),
        "",
        "## Throughput (first to last record)",
        "",
        *_throughput(document),
        "",
        "CPU is `getrusage` of the variant's process between its first and last record (client threads included);"
        " for ConsumerPerformance (7) it is the JVM's whole life, start-up and JIT included.",
        "",
        "## Goals",
        "",
        *_goals(document),
        "",
        "## Commits",
        "",
        *(_commits(document) or ["No variant with counted commits ran."]),
        "",
        "## Retry tiers",
        "",
        *(_tiers(document) or ["`runner-tier-fail` did not run."]),
        "",
        "## End-to-end latency",
        "",
        *(_latency(document) or ["Not run."]),
        "",
        "## RSS against N",
        "",
        *_rss(document),
        "",
        "## Beyond one core",
        "",
        *_scaling(document),
        "",
        "## Per-stage budget",
        "",
        *_stages(document),
        "",
    ]
    for name, summary in sorted(document.get("profiles", {}).items()):
        head = summary.splitlines()[:PROFILE_LINES]
        parts += [f"## Where the time goes: {name}", "", f"Top of `profile-{name}.txt`:", "", "```", *head, "```", ""]
    if document.get("chart"):
        parts += ["## Chart", "", f"![ratios]({document['chart']})", ""]
    return "\n".join(parts)
