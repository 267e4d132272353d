"""Variants 3 and 4: :class:`~neotool_common.consumer_base.KafkaConsumerRunner` with a no-op ``process()``.

Configured the way it runs in production: from the environment, envelope validation, the metrics server on a
free port, JSON logs at INFO on stderr. On the poison topic (``--invalid``) the schema-invalid records go to
the ``.dlq`` topic; the run ends at the last valid record, and the dead-letter writes are drained at shutdown.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry

from bench.meter import Meter, VariantArgs, parse_variant_args
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.observability.logs import configure_logging
from neotool_common.records.message import Message
from neotool_common.testing.kafka import free_port

COMMITS = "neotool_consumer_commits_total"
DEAD_LETTERED = "neotool_consumer_dlq_messages_total"


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


def main() -> None:
    args = parse_variant_args()
    settings = RunnerSettings.from_env(settings_env(args))
    configure_logging(settings.log_level, settings.log_format)
    meter = Meter(args.warmup)
    runner = BenchConsumer(settings, args, meter)
    if args.rss_every:
        meter.sample_rss(lambda: runner.seen, args.rss_every)
    runner.run()
    dead = runner.dead_lettered()
    extra: dict[str, Any] = {
        "processed": runner.seen,
        "dead_lettered": dead,
        "commits_total": int(runner.commits()),
    }
    meter.extra.update(extra)
    meter.write(args.out, "runner-poison" if args.invalid else "runner", runner.seen + dead)


if __name__ == "__main__":
    main()
