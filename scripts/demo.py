"""`make demo`: the institution-enhancement job end to end on embedded defaults.

A local Kafka broker, the job's topics, two batches of sample envelopes (a few poison, invalid and rate-limited
ones among them) published through ``producer.batch()`` with their manifests, the example consumer writing to an
embedded SQLite database and announcing each batch as it settles (its reconciliation is printed then), live
metrics while it runs, and a summary that must add up, per batch too.

The broker is the demo's own and goes with it; to look at the DLQ afterwards, run the demo against a broker
that stays: ``neotool-kafka run --port 9092 &`` then ``NEOTOOL_TEST_KAFKA_BROKERS=127.0.0.1:9092 make demo``
(the summary counts this run's dead letters only, so it runs again on the same broker).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from institution_enhancement.flows.consumer import TOPIC, InstitutionConsumer
from institution_enhancement.tasks.config import AppConfig
from institution_enhancement.tasks.samples import Outcome, SampleRecord, sample_records
from institution_enhancement.tasks.store import count_rows
from neotool_common import EnvelopeProducer, KafkaConnection, RunnerSettings, dlq_topic_for
from neotool_common.batches import BatchSummary, announcement_topic_for, manifest_topic_for
from neotool_common.batches.settings import BatchSettings
from neotool_common.observability.logs import configure_logging
from neotool_common.producing.envelope import new_batch_id
from neotool_common.testing.harness import read_topic, running, wait_until
from neotool_common.testing.kafka import free_port, provide_kafka
from neotool_common.testing.kafka.provider import TEST_BROKERS_ENV

RECORDS = 3_000
BATCHES = 2  # of RECORDS // BATCHES records each
SHOWN_METRICS = (
    "neotool_consumer_messages_processed_total",
    "neotool_consumer_dlq_messages_total",
    "neotool_consumer_retries_total",
    "neotool_consumer_commits_total",
)


def live_values(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - the demo's own loopback server
        text = response.read().decode()
    values: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in SHOWN_METRICS:
                values[sample.name] += sample.value
    return dict(values)


class DemoConsumer(InstitutionConsumer):
    """The example consumer, announcing batches; prints each batch's reconciliation when it is announced."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, batch_settings=BatchSettings(announce=True, watch_interval_ms=500), **kwargs)
        self.completed: dict[str, BatchSummary] = {}

    def on_batch_complete(self, summary: BatchSummary) -> None:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(summary.rejected_by_reason.items()))
        sums = summary.processed + summary.rejected == summary.expected and summary.pending == 0
        print(
            f"  batch {summary.batch_id} {summary.state.value}: published {summary.expected} = processed "
            f"{summary.processed} + rejected {summary.rejected} ({reasons})" + ("" if sums else "  DOES NOT ADD UP")
        )
        self.completed[summary.batch_id] = summary


def publish_batches(brokers: str, batches: list[list[SampleRecord]]) -> list[str]:
    """Each batch through producer.batch(): its records, then its manifest on <topic>.batches."""
    ids: list[str] = []
    with EnvelopeProducer(KafkaConnection(brokers=brokers)) as producer:
        for records in batches:
            with producer.batch(TOPIC, batch_id=records[0].envelope["batch_id"]) as batch:
                for record in records:
                    batch.publish_raw(record.value, key=record.key, headers=list(record.headers))
            assert batch.manifest is not None
            spread = ", ".join(f"p{s.partition}: {s.first_offset}-{s.last_offset}" for s in batch.manifest.partitions)
            print(f"published batch {batch.batch_id}: {batch.manifest.records} records ({spread}), manifest on")
            print(f"  {TOPIC}.batches")
            ids.append(batch.batch_id)
    return ids


def batch_adds_up(summary: BatchSummary | None, records: list[SampleRecord]) -> bool:
    if summary is None:
        return False
    wanted = Counter(r.outcome for r in records)
    return (
        summary.expected == len(records)
        and summary.processed + summary.rejected == summary.expected
        and summary.rejected_by_reason.get("poison", 0) == wanted[Outcome.POISON]
        and summary.rejected_by_reason.get("validation", 0) == wanted[Outcome.INVALID]
    )


def main() -> int:
    started = time.monotonic()
    configure_logging("WARNING", "console")
    size = RECORDS // BATCHES
    batches = [
        sample_records(
            size, seed=7 + n, poison_ratio=0.003, rate_limited_ratio=0.002, invalid_ratio=0.002, batch_id=new_batch_id()
        )
        for n in range(BATCHES)
    ]
    records = [record for batch in batches for record in batch]
    expected = Counter(r.outcome for r in records)
    with provide_kafka() as kafka, tempfile.TemporaryDirectory(prefix="neotool-demo-") as workdir:
        kafka.create_topic(TOPIC, partitions=3)
        kafka.create_topic(dlq_topic_for(TOPIC), partitions=3)
        for name in (manifest_topic_for(TOPIC), announcement_topic_for(TOPIC)):
            kafka.create_topic(name, partitions=1, config={"cleanup.policy": "compact"})
        print(f"broker {kafka.bootstrap_servers}: topics {TOPIC} and {dlq_topic_for(TOPIC)} (3 partitions each)")
        # The broker may be one that stays, with the dead letters of earlier runs: the summary counts this run's.
        earlier = {(r.partition, r.offset) for r in read_topic(kafka.bootstrap_servers, dlq_topic_for(TOPIC))}

        batch_ids = publish_batches(kafka.bootstrap_servers, batches)

        database_url = f"sqlite:///{Path(workdir) / 'institutions.db'}"
        port = free_port()
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        settings = RunnerSettings.from_env(
            {
                "KAFKA_BROKERS": kafka.bootstrap_servers,
                "METRICS_PORT": str(port),
                "METRICS_HOST": "127.0.0.1",
                "RETRY_BACKOFF_INITIAL_MS": "50",
                "LOG_LEVEL": "WARNING",
                "LOG_FORMAT": "console",
            },
            defaults_from=InstitutionConsumer,
        )
        consumer = DemoConsumer(settings, app_config=AppConfig(database_url), registry=CollectorRegistry())
        print(f"consuming with group {settings.group_id}; metrics at {metrics_url} (also /healthz, /readyz)\n")
        with running(consumer):
            wait_until(
                lambda: consumer.records_processed + consumer.records_dead_lettered >= RECORDS,
                timeout=120,
                what="the whole batch handled",
            )
            wait_until(
                lambda: live_values(metrics_url).get(SHOWN_METRICS[1]) == consumer.records_dead_lettered,
                what="every dead-letter write acknowledged",
            )
            wait_until(
                lambda: all(b in consumer.completed for b in batch_ids), timeout=60, what="both batches announced"
            )
            live = live_values(metrics_url)
        dead = [
            r
            for r in read_topic(kafka.bootstrap_servers, dlq_topic_for(TOPIC))
            if (r.partition, r.offset) not in earlier
        ]
        rows = count_rows(database_url)

    by_reason = Counter(r.header("dlq.reason") for r in dead)
    processed = consumer.records_processed
    print("\nlive metrics scraped before shutdown:")
    for name in SHOWN_METRICS:
        print(f"  {name:<45} {live.get(name, 0):>8.0f}")
    print("\nsummary")
    print(f"  published        {RECORDS:>6}")
    print(f"  processed        {processed:>6}   ({expected[Outcome.RATE_LIMITED]} of them after a retry)")
    print(f"  dead-lettered    {len(dead):>6}   " + ", ".join(f"{k}: {v}" for k, v in sorted(by_reason.items())))
    print(f"  database rows    {rows:>6}   (one per distinct processed record_id)")
    print(f"  took {time.monotonic() - started:.1f}s")
    adds_up = (
        processed + len(dead) == RECORDS
        and rows == processed
        and by_reason.get("poison", 0) == expected[Outcome.POISON]
        and by_reason.get("validation", 0) == expected[Outcome.INVALID]
    )
    for batch_id, batch_records in zip(batch_ids, batches, strict=True):
        batch_ok = batch_adds_up(consumer.completed.get(batch_id), batch_records)
        print(f"  batch {batch_id} reconciled: " + ("adds up" if batch_ok else "DOES NOT ADD UP"))
        adds_up = adds_up and batch_ok
    print("  the summary adds up" if adds_up else "  THE SUMMARY DOES NOT ADD UP")
    print("\n".join(dlq_hint(kafka.bootstrap_servers)))
    return 0 if adds_up else 1


def dlq_hint(brokers: str) -> list[str]:
    """Commands that work when pasted: the broker they need, and neotool-dlq by its path in the virtualenv."""
    tool = os.path.join(os.path.relpath(Path(sys.executable).parent), "neotool-dlq")
    dlq = dlq_topic_for(TOPIC)
    if os.environ.get(TEST_BROKERS_ENV):  # the broker was not the demo's: it is still running
        return ["\nthe DLQ, on the broker that is still running:", f"  {tool} list {dlq} --brokers {brokers}"]
    return [
        "\nthe demo's broker is gone with it; to look at the DLQ, run the demo against a broker that stays:",
        "  .venv/bin/neotool-kafka run --port 9092 &",
        f"  {TEST_BROKERS_ENV}=127.0.0.1:9092 make demo",
        f"  {tool} list {dlq} --brokers 127.0.0.1:9092",
        f"  {tool} replay {dlq} --reason poison --dry-run --brokers 127.0.0.1:9092",
    ]


if __name__ == "__main__":
    sys.exit(main())
