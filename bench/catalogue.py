"""The variants, in the order of the issue, and how each is started."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["IN_TREE", "VARIANTS", "Interpreter", "Variant", "by_name"]


class Interpreter(Enum):
    MAIN = "main"  # the project's virtualenv
    PEERS = "peers"  # bench/.venv-peers: the peer frameworks, without neotool-common
    JAVA = "java"  # the broker's own tools


@dataclass(frozen=True)
class Variant:
    number: str  # as in the issue; 6b is an addition
    name: str
    label: str
    interpreter: Interpreter
    module: str = ""
    poison: bool = False
    env: tuple[tuple[str, str], ...] = ()
    profile_focus: str = ""  # the steady-state loop a py-spy profile is narrowed to
    # Read only this many of the topic's first records (0: all). For a peer whose rate is steady after its
    # first second and whose whole-topic run would take most of a round's time (FastStream: 5 minutes of
    # 1,000,000 records at ~3,000/s, three times over), so that `make bench` stays near an hour.
    max_records: int = 0
    # Delay tiers (RETRY_TOPIC_DELAYS_MS): the harness creates their topics for each run's fresh group first.
    retry_delays_ms: tuple[int, ...] = ()
    failing: bool = False  # 1% of the records fail once, on their first attempt, and pass through the tier


# The one tier of 3t and 4t: short, so the failed records of 4t come back while the source is still read.
TIER_DELAY_MS = 1000

VARIANTS = (
    Variant("1", "raw", "confluent-kafka consume() loop, counting only", Interpreter.MAIN, "bench.variants.raw"),
    Variant(
        "2",
        "handwritten",
        "hand-written loop: EnvelopeReader, store_offsets, async commit every 1 s",
        Interpreter.MAIN,
        "bench.variants.handwritten",
    ),
    Variant(
        "3",
        "runner",
        "KafkaConsumerRunner, no-op process(), metrics on, INFO logs",
        Interpreter.MAIN,
        "bench.variants.runner",
        profile_focus="Engine._loop",
    ),
    Variant(
        "3s",
        "runner-schema",
        "as 3 with the example's payload JSON Schema (institution.v1.json), compiled once",
        Interpreter.MAIN,
        "bench.variants.runner",
        env=(("BENCH_PAYLOAD", "schema"),),
        profile_focus="Engine._loop",
    ),
    Variant(
        "3p",
        "runner-pydantic",
        "as 3 with the same payload rules as a pydantic model",
        Interpreter.MAIN,
        "bench.variants.runner",
        env=(("BENCH_PAYLOAD", "model"),),
        profile_focus="Engine._loop",
    ),
    Variant(
        "4",
        "runner-poison",
        "as 3 on the 1%-poison topic (DLQ writes included)",
        Interpreter.MAIN,
        "bench.variants.runner",
        poison=True,
        profile_focus="Engine._loop",
    ),
    # Not in the issue: what the runner's prefetch bound (16 MiB, docs/throughput.md "Memory") costs in records/s,
    # against librdkafka's own default.
    Variant(
        "3m",
        "runner-prefetch64",
        "as 3 with librdkafka's default prefetch bound (queued.max.messages.kbytes=65536, the runner's is 16384)",
        Interpreter.MAIN,
        "bench.variants.runner",
        env=(("KAFKA_CONFIG_QUEUED_MAX_MESSAGES_KBYTES", "65536"),),
    ),
    # Not in the issue: the runner with the record fast path as fast.py (RECORD_DECODER=interpreted), against 3,
    # which runs the compiled build (scripts/build_native.py, docs/throughput.md "The compiled fast path").
    Variant(
        "3i",
        "runner-interpreted",
        "as 3 with the record fast path interpreted (RECORD_DECODER=interpreted), not compiled",
        Interpreter.MAIN,
        "bench.variants.runner",
        env=(("RECORD_DECODER", "interpreted"),),
    ),
    Variant(
        "3t",
        "runner-tier",
        "as 3 with one retry tier enabled (RETRY_TOPIC_DELAYS_MS=1000); no record fails",
        Interpreter.MAIN,
        "bench.variants.runner",
        profile_focus="Engine._loop",
        retry_delays_ms=(TIER_DELAY_MS,),
    ),
    Variant(
        "4t",
        "runner-tier-fail",
        "as 3t with 1% of the records failing once (first attempt): through the tier, then processed; source rate",
        Interpreter.MAIN,
        "bench.variants.runner",
        env=(("RETRY_MAX_ATTEMPTS", "1"),),
        profile_focus="Engine._loop",
        retry_delays_ms=(TIER_DELAY_MS,),
        failing=True,
    ),
    Variant(
        "5",
        "faststream",
        "FastStream subscriber (confluent backend), no-op handler, JSON",
        Interpreter.PEERS,
        "bench.variants.peer_faststream",
        max_records=200_000,
    ),
    Variant(
        "6",
        "arroyo",
        "arroyo: RunTask decoding JSON, then CommitOffsets",
        Interpreter.PEERS,
        "bench.variants.peer_arroyo",
    ),
    # Not in the issue: arroyo's default queued.min.messages (10,000) makes librdkafka >= 2.4 back off its
    # fetches (fetch.queue.backoff.ms, 1 s) whenever that many records wait, which caps (6) well below its CPU
    # cost. This one has librdkafka's own default (100,000), so the comparison is with arroyo at its best too.
    Variant(
        "6b",
        "arroyo-tuned",
        "as 6 with queued.min.messages=100000 (librdkafka's default)",
        Interpreter.PEERS,
        "bench.variants.peer_arroyo",
        env=(("BENCH_ARROYO_QUEUED_MIN_MESSAGES", "100000"),),
    ),
    Variant("7", "kafka-perf", "Apache Kafka ConsumerPerformance (Java), the broker's reference", Interpreter.JAVA),
)

IN_TREE = tuple(v.name for v in VARIANTS if v.interpreter is Interpreter.MAIN)


def by_name(names: str) -> tuple[Variant, ...]:
    """The variants named in a comma-separated list (``all`` for every one), in catalogue order."""
    wanted = {n.strip() for n in names.split(",") if n.strip()}
    if "all" in wanted:
        return VARIANTS
    unknown = wanted - {v.name for v in VARIANTS}
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; known: {', '.join(v.name for v in VARIANTS)}")
    return tuple(v for v in VARIANTS if v.name in wanted)
