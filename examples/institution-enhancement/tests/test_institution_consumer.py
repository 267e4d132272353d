"""The consumer end to end: a real Kafka broker, a real PostgreSQL, the runner from neotool-common.

Each test publishes to topics of its own (``KAFKA_TOPICS``) and writes to a database of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable

import psycopg
import pytest
from conftest import DeadLetters, RunningConsumer, wait_for

from institution_enhancement.flows.consumer import InstitutionConsumer
from institution_enhancement.tasks.samples import Outcome, SampleRecord, publish_samples, sample_records
from institution_enhancement.tasks.store import APPLICATION_NAME, count_rows
from neotool_common.deadletter.headers import DLQ_ORIGINAL_TOPIC, DLQ_REASON, dlq_topic_for
from neotool_common.policies.retry_topics import retry_topics
from neotool_common.testing.kafka import KafkaEndpoint, free_port

pytestmark = pytest.mark.kafka

EXPECTED_REASON = {Outcome.POISON: "poison", Outcome.INVALID: "validation"}


def stored_ids(records: list[SampleRecord]) -> set[str]:
    return {r.record_id for r in records if r.outcome in (Outcome.STORED, Outcome.RATE_LIMITED)}


def dead_ids(records: list[SampleRecord]) -> set[str]:
    return {r.record_id for r in records if r.outcome in EXPECTED_REASON}


def delivery_counts(database_url: str) -> Counter[int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT delivery_count FROM institution_enhancement.institutions").fetchall()
    return Counter(n for (n,) in rows)


@pytest.fixture
def topic(make_topic: Callable[..., str]) -> str:
    name = make_topic(partitions=3)
    make_topic(partitions=1, name=dlq_topic_for(name))
    return name


def test_a_batch_lands_once_in_postgres_and_its_poison_in_the_dlq(
    kafka: KafkaEndpoint, topic: str, postgres_url: str, start_consumer: Callable[..., RunningConsumer]
) -> None:
    records = sample_records(60, seed=21, poison_ratio=0.05, rate_limited_ratio=0.05, invalid_ratio=0.03)
    duplicate = next(r for r in records if r.outcome is Outcome.STORED)
    dlq = DeadLetters(kafka.bootstrap_servers, dlq_topic_for(topic))
    running = start_consumer(topic, postgres_url)

    publish_samples(kafka.bootstrap_servers, topic, [*records, duplicate])  # the duplicate: a redelivery
    try:
        running.wait_for(lambda: dlq.poll() >= len(dead_ids(records)), 60, "the dead letters")
        running.wait_for(lambda: running.consumer.records_processed == len(stored_ids(records)) + 1, 60, "all records")
    finally:
        dlq.close()
    running.stop()

    assert count_rows(postgres_url) == len(stored_ids(records)) == 60 - 3 - 2
    assert delivery_counts(postgres_url) == {1: len(stored_ids(records)) - 1, 2: 1}
    by_id = {r.record_id: r for r in records}
    assert len(dlq.records) == len(dead_ids(records))
    for headers, envelope in dlq.records:
        record = by_id[envelope["record_id"]]
        assert headers[DLQ_REASON] == EXPECTED_REASON[record.outcome]
        assert headers[DLQ_ORIGINAL_TOPIC] == topic
    assert {envelope["record_id"] for _, envelope in dlq.records} == dead_ids(records)
    rate_limited = sum(r.outcome is Outcome.RATE_LIMITED for r in records)
    group = running.consumer.settings.group_id
    retries = running.consumer.registry.get_sample_value(
        "neotool_consumer_retries_total", {"topic": topic, "group": group}
    )
    assert retries == rate_limited == 3


def test_reprocessing_the_whole_topic_adds_no_row(
    kafka: KafkaEndpoint, topic: str, postgres_url: str, start_consumer: Callable[..., RunningConsumer]
) -> None:
    records = sample_records(40, seed=22, poison_ratio=0.05, rate_limited_ratio=0)
    publish_samples(kafka.bootstrap_servers, topic, records)
    stored = len(stored_ids(records))

    first = start_consumer(topic, postgres_url)
    first.wait_for(lambda: first.consumer.records_processed == stored, 60, "the first pass")
    first.stop()
    # A second group re-reads everything, as after a crash before any commit or an offset reset.
    second = start_consumer(topic, postgres_url)
    second.wait_for(lambda: second.consumer.records_processed == stored, 60, "the second pass")
    second.stop()

    assert count_rows(postgres_url) == stored
    assert delivery_counts(postgres_url) == {2: stored}


def test_a_dropped_database_connection_is_retried_not_dead_lettered(
    kafka: KafkaEndpoint, topic: str, postgres_url: str, start_consumer: Callable[..., RunningConsumer]
) -> None:
    records = sample_records(30, seed=23, poison_ratio=0, rate_limited_ratio=0)
    running = start_consumer(topic, postgres_url)
    publish_samples(kafka.bootstrap_servers, topic, records[:15])
    running.wait_for(lambda: count_rows(postgres_url) == 15, 60, "the first half")

    with psycopg.connect(postgres_url, autocommit=True) as admin:
        terminated = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database()",
            (APPLICATION_NAME,),
        ).fetchone()
    assert terminated == (1,)
    publish_samples(kafka.bootstrap_servers, topic, records[15:])
    running.wait_for(lambda: count_rows(postgres_url) == 30, 60, "the second half")
    running.stop()

    consumer = running.consumer
    assert consumer.records_dead_lettered == 0
    group = consumer.settings.group_id
    assert consumer.registry.get_sample_value("neotool_consumer_retries_total", {"topic": topic, "group": group}) == 1


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_the_console_script_serves_probes_consumes_and_stops_on_sigterm(
    kafka: KafkaEndpoint, topic: str, postgres_url: str
) -> None:
    port = free_port()
    group = f"institution-enhancement-{topic}"
    for retry_topic in retry_topics(topic, group, InstitutionConsumer.retry_topic_delays_ms):
        kafka.create_topic(retry_topic, 1)  # the class's retry tiers: not ready without them
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_"))},
        "KAFKA_BROKERS": kafka.bootstrap_servers,
        "KAFKA_TOPICS": topic,
        "KAFKA_GROUP_ID": group,
        "DATABASE_URL": postgres_url,
        "METRICS_PORT": str(port),
        "METRICS_HOST": "127.0.0.1",
        "RETRY_BACKOFF_INITIAL_MS": "20",
        "LOG_FORMAT": "json",
    }
    script = os.path.join(os.path.dirname(sys.executable), "institution-enhancement-consumer")
    process = subprocess.Popen([script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    records = sample_records(20, seed=24, poison_ratio=0.1, rate_limited_ratio=0.05)
    try:

        def ready() -> bool:
            if process.poll() is not None:
                pytest.fail(f"the consumer exited with {process.returncode}")
            return http_get(f"http://127.0.0.1:{port}/readyz")[0] == 200

        wait_for(ready, 60, "/readyz to answer 200")
        publish_samples(kafka.bootstrap_servers, topic, records)
        wait_for(lambda: count_rows(postgres_url) == len(stored_ids(records)), 60, "the rows")
        assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        status, metrics = http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        series = f'neotool_consumer_messages_processed_total{{group="{env["KAFKA_GROUP_ID"]}",topic="{topic}"}}'
        assert series in metrics
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    except BaseException:
        process.kill()
        stdout, stderr = process.communicate()
        print("consumer stdout:", stdout[-5000:], "consumer stderr:", stderr[-5000:], sep="\n")
        raise
    assert process.returncode == 0, stderr[-3000:]
    events = [json.loads(line) for line in stderr.splitlines() + stdout.splitlines() if line.startswith("{")]
    names = [event.get("event") for event in events]
    assert "database migrated" in names
    assert names.index("database migrated") < names.index("consumer started") < names.index("consumer stopped")
    stopped = events[names.index("consumer stopped")]
    assert stopped["records_processed"] == len(stored_ids(records))
    assert stopped["records_dead_lettered"] == len(dead_ids(records))
