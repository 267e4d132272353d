"""Variants 3, 3s, 3p, 3t, 4 and 4t: :class:`~neotool_common.consumer_base.KafkaConsumerRunner`, no-op ``process()``.

Configured the way it runs in production: from the environment, envelope validation, the metrics server on a
free port, JSON logs at INFO on stderr. On the poison topic (``--invalid``) the schema-invalid records go to
the ``.dlq`` topic; the run ends at the last valid record, and the dead-letter writes are drained at shutdown.
``BENCH_PAYLOAD=schema`` declares the example consumer's payload JSON Schema (``institution.v1.json``),
``BENCH_PAYLOAD=model`` the same rules as a pydantic model; each is compiled once, when the runner starts.
With ``RETRY_TOPIC_DELAYS_MS`` the runner reads its group's tier topics too (the harness created them);
``BENCH_FAIL_ONCE=1`` makes 1% of the source records fail once (:class:`FailOnceConsumer`).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pydantic
from prometheus_client import CollectorRegistry

from bench.meter import Meter, VariantArgs, parse_variant_args
from bench.records import is_poison
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.observability.logs import configure_logging
from neotool_common.records.message import Message
from neotool_common.records.native import fast_envelope_type
from neotool_common.testing.kafka import free_port

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD_SCHEMA = ROOT / "examples/institution-enhancement/src/institution_enhancement/schemas/institution.v1.json"
COMMITS = "neotool_consumer_commits_total"
DEAD_LETTERED = "neotool_consumer_dlq_messages_total"


def _text(pattern: str = "", min_length: int = 0, max_length: int | None = None) -> Any:
    return Annotated[
        str, pydantic.StringConstraints(pattern=pattern or None, min_length=min_length, max_length=max_length)
    ]


class Institution(pydantic.BaseModel):
    """``institution.v1.json`` as a pydantic model: the same members, patterns and limits."""

    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    institution_id: _text(r"^[A-Z]{2,8}-[0-9A-Za-z]{1,20}$")  # type: ignore[valid-type]
    name: _text(min_length=1, max_length=200)  # type: ignore[valid-type]
    routing_number: _text(r"^[0-9]{9}$")  # type: ignore[valid-type]
    country: _text(r"^[A-Z]{2}$")  # type: ignore[valid-type]
    state: _text(r"^[A-Z]{2}$") | None = None  # type: ignore[valid-type]
    city: _text(min_length=1, max_length=100) | None = None  # type: ignore[valid-type]
    swift_bic: _text(r"^[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$") | None = None  # type: ignore[valid-type]
    website: _text(r"^https?://[^\s/]+(/\S*)?$", max_length=300) | None = None  # type: ignore[valid-type]
    total_assets_usd: Annotated[int, pydantic.Field(ge=0)] | None = None


class BenchConsumer(KafkaConsumerRunner):
    def __init__(self, settings: RunnerSettings, args: VariantArgs, meter: Meter) -> None:
        super().__init__(settings, registry=CollectorRegistry())
        self.meter = meter
        self.seen = 0
        self.valid = args.expected - args.invalid
        self.total = args.expected
        self.latency = args.mode == "latency"
        self.commits_at_first = 0.0

    def process(self, message: Message) -> None:
        self.seen += 1
        if self.latency:
            self.meter.latency(message.payload["sent_ns"])
        if self.seen == 1:
            self.meter.first(1)
            self.commits_at_first = self.commits()
        if self.seen == self.valid:
            self.meter.last(self.total)
            self.meter.extra["commits_in_window"] = self.commits() - self.commits_at_first
            self.stop()

    def commits(self) -> float:
        return self.registry.get_sample_value(COMMITS, {"group": self.settings.group_id}) or 0.0

    def dead_lettered(self) -> int:
        return int(sum(s.value for m in self.registry.collect() for s in m.samples if s.name == DEAD_LETTERED))


def settings_env(args: VariantArgs) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        KAFKA_BROKERS=args.bootstrap,
        KAFKA_TOPICS=args.topic,
        KAFKA_GROUP_ID=args.group,
        METRICS_PORT=str(free_port()),
        METRICS_HOST="127.0.0.1",
        LOG_LEVEL="INFO",
        LOG_FORMAT="json",
    )
    return env


class SchemaConsumer(BenchConsumer):
    payload_schema: ClassVar[Path] = PAYLOAD_SCHEMA


class ModelConsumer(BenchConsumer):
    payload_model: ClassVar[type[pydantic.BaseModel]] = Institution


class DownstreamBlip(Exception):
    """A transient failure: the record is retried (here through the tier), not dead-lettered."""


class FailOnceConsumer(BenchConsumer):
    """The source records at the poison topic's positions (1%, bench/records.py) raise a transient error on their
    first attempt; with ``RETRY_MAX_ATTEMPTS=1`` each goes to the tier at once and passes when it comes back.

    The measured window is the source partition's: its first record to its last. The run goes on until every
    failed record came back from the tier and was processed, so the counts are of the whole run."""

    def __init__(self, settings: RunnerSettings, args: VariantArgs, meter: Meter) -> None:
        super().__init__(settings, args, meter)
        self.source = args.topic
        self.failed = 0
        self.returned = 0
        self.source_done = False
        self.started_at = 0.0
        self.all_back_s: float | None = None

    def process(self, message: Message) -> None:
        if message.topic != self.source:
            self.returned += 1
            self._stop_when_all_back()
            return
        self.seen += 1
        if self.seen == 1:
            self.started_at = time.perf_counter()
            self.meter.first(1)
            self.commits_at_first = self.commits()
        fails = is_poison(message.offset, self.total)
        self.failed += fails
        if self.seen == self.total:
            self.meter.last(self.total)
            self.meter.extra["commits_in_window"] = self.commits() - self.commits_at_first
            self.source_done = True
            self._stop_when_all_back()
        if fails:
            raise DownstreamBlip(f"downstream unavailable for offset {message.offset}")

    def _stop_when_all_back(self) -> None:
        if self.source_done and self.returned >= self.failed:
            self.all_back_s = time.perf_counter() - self.started_at
            self.stop()


class GroupConsumer(BenchConsumer):
    """One member of a group (bench/scaling.py): held at ``setup()`` until every member is there, marks the end
    of its window at the last record of each partition it finishes, and runs until SIGTERM."""

    def __init__(self, settings: RunnerSettings, args: VariantArgs, meter: Meter) -> None:
        super().__init__(settings, args, meter)
        self.barrier = Path(os.environ["BENCH_GROUP_BARRIER"])
        self.ends = dict(enumerate(int(end) for end in os.environ["BENCH_PARTITION_ENDS"].split(",")))

    def setup(self) -> None:
        (self.barrier / f"ready-{os.getpid()}").touch()
        while not (self.barrier / "go").exists():
            time.sleep(0.005)

    def process(self, message: Message) -> None:
        self.seen += 1
        if self.seen == 1:
            self.meter.first(1)
        if message.offset == self.ends.get(message.partition):
            self.meter.last(self.seen)


CONSUMERS: dict[str, type[BenchConsumer]] = {"": BenchConsumer, "schema": SchemaConsumer, "model": ModelConsumer}
NAMES = {"": "runner", "schema": "runner-schema", "model": "runner-pydantic"}


def main() -> None:
    args = parse_variant_args()
    settings = RunnerSettings.from_env(settings_env(args))
    configure_logging(settings.log_level, settings.log_format)
    meter = Meter(args.warmup)
    payload = os.environ.get("BENCH_PAYLOAD", "")
    grouped = "BENCH_GROUP_BARRIER" in os.environ
    failing = os.environ.get("BENCH_FAIL_ONCE") == "1"
    kind = GroupConsumer if grouped else FailOnceConsumer if failing else CONSUMERS[payload]
    runner = kind(settings, args, meter)
    if grouped:
        signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    if args.rss_every:
        meter.sample_rss(lambda: runner.seen, args.rss_every)
    runner.run()
    dead = runner.dead_lettered()
    extra: dict[str, Any] = {
        "processed": runner.seen,
        "dead_lettered": dead,
        "commits_total": int(runner.commits()),
        "record_decoder": fast_envelope_type(settings.record_decoder)[1],  # the fast path's build that ran
    }
    if isinstance(runner, FailOnceConsumer):  # processed: calls of process() that returned, from either topic
        extra.update(processed=runner.seen - runner.failed + runner.returned, tier_failed=runner.failed)
        extra.update(tier_returned=runner.returned, all_back_s=runner.all_back_s)
    meter.extra.update(extra)
    name = "runner-group" if grouped else "runner-poison" if args.invalid else NAMES[payload]
    if settings.retry_topics.enabled:
        name = "runner-tier-fail" if failing else "runner-tier"
    if settings.record_decoder == "interpreted" and name == "runner":
        name = "runner-interpreted"
    if grouped and not meter.started:  # a member the group gave no record to (the other one was faster)
        args.out.write_text(json.dumps({"variant": name, "counted": 0, **meter.extra}))
        return
    meter.write(args.out, name, runner.seen + dead)


if __name__ == "__main__":
    main()
