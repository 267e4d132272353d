"""The benchmark harness: ``python -m bench.run [--records N] [--rounds R] [--variants a,b] [--rss-check]``.

One run: a broker (started here, or ``--bootstrap``), the topics pre-filled once, every variant in its own
process for ``--rounds`` rounds in rotating order, the latency runs, optionally the RSS check and py-spy
profiles, then ``latest.json``, ``latest.md`` and ``latest.png`` in ``--out-dir``. Exit code 1 when a variant
failed or did not count every record (the figures are written all the same).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import pyspy
from bench.catalogue import VARIANTS, Interpreter, Variant, by_name
from bench.document import build_document, write_outputs
from bench.scaling import run_scaling
from bench.session import Session, Settings
from neotool_common.testing.kafka import KafkaEndpoint, LocalKafkaCluster

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PEERS_PYTHON = ROOT / "bench" / ".venv-peers" / "bin" / "python"
LATENCY_VARIANTS = ("handwritten", "runner")
DEFAULT_RECORDS = 1_000_000
RSS_SAMPLE_EVERY_S = 0.25


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description="Consumer benchmarks (bench/README.md)")
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS, help="records per topic (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each in a rotated order (default 3)")
    parser.add_argument("--variants", default="all", help=f"comma-separated, of: {', '.join(v.name for v in VARIANTS)}")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="where latest.{json,md,png} go")
    parser.add_argument(
        "--bootstrap", default=os.environ.get("NEOTOOL_TEST_KAFKA_BROKERS", ""), help="an existing broker"
    )
    parser.add_argument("--latency-rate", type=float, default=5000.0, help="records/s of the latency runs")
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="length of a latency run (0: none)")
    parser.add_argument("--rss-check", action="store_true", help="also run the runner over N and 10 x N records")
    parser.add_argument(
        "--scaling", action="store_true", help="also run 1 and 2 runner processes in one group (bench/scaling.py)"
    )
    parser.add_argument("--profile", default="", help="comma-separated variants to run once more under py-spy")
    parser.add_argument("--peers-python", type=Path, default=PEERS_PYTHON, help="python of the peers' virtualenv")
    parser.add_argument("--note", default="", help="a sentence for latest.md (e.g. why --records is small)")
    args = parser.parse_args(argv)
    if args.records < 200 or args.rounds < 1:
        parser.error("--records must be at least 200 and --rounds at least 1")
    try:
        args.variants = by_name(args.variants)
        args.profile = by_name(args.profile) if args.profile else ()
    except ValueError as exc:
        parser.error(str(exc))
    if any(v.interpreter is Interpreter.PEERS for v in args.variants) and not args.peers_python.exists():
        parser.error(f"{args.peers_python} does not exist: `make bench` creates it, or leave out the peer variants")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_at_start = list(os.getloadavg())
    settings = Settings(args.records, args.peers_python, args.latency_rate, args.latency_seconds)
    with tempfile.TemporaryDirectory(prefix="neotool-bench-") as logs, _broker(args.bootstrap) as (endpoint, pid):
        session = Session(settings, endpoint, pid, Path(logs), _say)
        topics = {p: session.prefill("poison" if p else "clean", args.records, poison=p) for p in _poison_kinds(args)}
        rounds = _run_rounds(session, args.variants, topics, args.rounds)
        latency = [session.latency(v) for v in args.variants if v.name in LATENCY_VARIANTS and args.latency_seconds]
        rss = _rss_check(session, topics[False], args.records) if args.rss_check else None
        profiles, stages = _profiles(session, args.profile, topics, args.out_dir, _median_cpu(rounds, "raw"))
        scaling = run_scaling(session, args.records) if args.scaling else None
        if scaling is not None:
            _say(_scaling_line(scaling))
        pinning = session.describe_pinning()
    document = build_document(
        args=args,
        variants=args.variants,
        topics=list(topics.values()),
        rounds=rounds,
        latency=latency,
        rss_check=rss,
        profiles=profiles,
        stages=stages,
        scaling=scaling,
        pinning=pinning,
        peers_python=args.peers_python,
        default_records=DEFAULT_RECORDS,
        load_at_start=load_at_start,
    )
    write_outputs(document, args.out_dir, args.peers_python, _say)
    failed = [r for runs in rounds.values() for r in runs if not r.get("complete")]
    failed += [r for r in (scaling or {}).get("runs", {}).values() if not r.get("complete")]
    failed += [r for r in latency if "error" in r or r.get("counted") != r.get("sent")]
    for result in failed:
        _say(f"FAILED {result['variant']}: {result.get('error', 'did not count every record')}")
        for line in result.get("log_tail", ())[-15:]:
            _say(f"    {line}")
    return 1 if failed else 0


@contextlib.contextmanager
def _broker(bootstrap: str) -> Iterator[tuple[KafkaEndpoint, int | None]]:
    """The given broker, or a single local node whose JVM PID is known (so it can be pinned)."""
    if bootstrap:
        yield KafkaEndpoint(bootstrap), None
        return
    _say("starting a local Kafka broker")
    # The coordinator waits a second for more members before a new group's first rebalance (Kafka's default is
    # 3 s; the test kit's 0): the scaling run's two processes then join together and get a partition each.
    with LocalKafkaCluster(1, heap="1g", broker_config={"group.initial.rebalance.delay.ms": "1000"}) as cluster:
        node = cluster.nodes[0]
        yield cluster, None if node.process is None else node.process.pid


def _poison_kinds(args: argparse.Namespace) -> list[bool]:
    kinds = {v.poison for v in args.variants}
    if args.rss_check:
        kinds.add(False)
    return sorted(kinds)


def _run_rounds(
    session: Session, variants: tuple[Variant, ...], topics: dict[bool, Any], rounds: int
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
    for index in range(rounds):
        shift = index % len(variants)
        order = variants[shift:] + variants[:shift]
        for position, variant in enumerate(order):
            result = session.run(variant, f"r{index + 1}", topics[variant.poison])
            result.update(round=index + 1, position=position + 1)
            results[variant.name].append(result)
            _say(_line(index + 1, variant, result))
    return results


def _rss_check(session: Session, clean: Any, records: int) -> dict[str, Any]:
    """Peak RSS of the runner over N and over 10 x N records, and its RSS sampled along the longer run."""
    runner = next(v for v in VARIANTS if v.name == "runner")
    large = session.prefill("rss10x", records * 10, poison=False)
    at_n = session.run(runner, "rss-n", clean, extra=[f"--rss-every={RSS_SAMPLE_EVERY_S}"])
    at_10n = session.run(runner, "rss-10n", large, extra=[f"--rss-every={RSS_SAMPLE_EVERY_S}"])
    _say(_line(0, runner, at_n))
    _say(_line(0, runner, at_10n))
    result: dict[str, Any] = {"records": records, "at_n": at_n, "at_10n": at_10n}
    if at_n.get("peak_rss_mb") and at_10n.get("peak_rss_mb"):
        result["growth"] = at_10n["peak_rss_mb"] / at_n["peak_rss_mb"]
    result["growth_along_10n"] = _growth_along(at_10n.get("rss_samples", []), records * 10)
    return result


def _growth_along(samples: list[list[float]], total: int) -> float | None:
    """RSS at the last sample over RSS at the first sample past 10% of the records (buffers full by then)."""
    steady = [mb for handled, mb in samples if handled >= total // 10]
    return steady[-1] / steady[0] if len(steady) >= 2 else None


def _median_cpu(rounds: dict[str, list[dict[str, Any]]], name: str) -> float | None:
    values = [r["cpu_us_per_record"] for r in rounds.get(name, []) if r.get("cpu_us_per_record")]
    return statistics.median(values) if values else None


def _profiles(
    session: Session,
    variants: tuple[Variant, ...],
    topics: dict[bool, Any],
    out_dir: Path,
    client_threads_us: float | None,
) -> tuple[dict[str, str], dict[str, Any]]:
    """The py-spy summaries, and each profiled variant's per-stage budget in microseconds per record."""
    profiles: dict[str, str] = {}
    stages: dict[str, Any] = {}
    for variant in variants:
        if variant.interpreter is Interpreter.JAVA:
            continue
        raw = session.logs / f"profile-{variant.name}.txt"
        result = session.run(variant, "profile", topics[variant.poison], profile=raw)
        if "error" in result or not raw.exists():
            profiles[variant.name] = f"profile run failed: {result.get('error', 'no samples written')}"
            continue
        summary = pyspy.summarize(raw, variant.profile_focus)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"profile-{variant.name}.txt").write_text(summary)
        profiles[variant.name] = summary
        cpu = result.get("cpu_us_per_record")
        stages[variant.name] = pyspy.stage_budget(raw, variant.profile_focus, cpu, client_threads_us)
    return profiles, stages


def _line(round_number: int, variant: Variant, result: dict[str, Any]) -> str:
    where = f"round {round_number}" if round_number else "rss check"
    if "error" in result:
        return f"{where}: {variant.name:<14} FAILED: {result['error']}"
    cpu = result.get("cpu_us_per_record")
    return (
        f"{where}: {variant.name:<14} {result['records_per_s']:>11,.0f} records/s  "
        f"{cpu if cpu is None else round(cpu, 1)!s:>6} us CPU/record  {result['peak_rss_mb']:6.0f} MB peak RSS  "
        f"counted {result['counted']:,}"
    )


def _scaling_line(scaling: dict[str, Any]) -> str:
    rates = [run.get("records_per_s") for run in scaling["runs"].values()]
    shown = ", ".join(f"{n} process(es) {rate or 0:,.0f} records/s" for n, rate in zip((1, 2), rates, strict=True))
    return f"scaling: {shown}; speedup {scaling['speedup'] or 0:.2f}"


def _say(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
