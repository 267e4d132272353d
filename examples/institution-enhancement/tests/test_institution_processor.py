"""The processor on an embedded SQLite store: enrichment, poison, the transient path, idempotency."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from conftest import message_for

from institution_enhancement.flows.consumer import InstitutionConsumer
from institution_enhancement.tasks.config import AppConfig
from institution_enhancement.tasks.directory import DirectoryRateLimitedError, SimulatedFedDirectory
from institution_enhancement.tasks.migrations import migrate
from institution_enhancement.tasks.processor import (
    InstitutionProcessor,
    classify_institution,
    normalize_name,
    website_domain,
)
from institution_enhancement.tasks.samples import Outcome, SampleRecord, sample_records
from institution_enhancement.tasks.store import InstitutionStore, open_store
from neotool_common import Ordering, RunnerSettings
from neotool_common.errors import PoisonMessageError

RECORDS = sample_records(60, seed=11, poison_ratio=0.05, rate_limited_ratio=0.05)


def first(outcome: Outcome) -> SampleRecord:
    return next(r for r in RECORDS if r.outcome is outcome)


@pytest.fixture
def store(sqlite_url: str) -> Iterator[InstitutionStore]:
    config = AppConfig(database_url=sqlite_url)
    migrate(config)
    opened = open_store(config)
    yield opened
    opened.close()


@pytest.fixture
def directory() -> SimulatedFedDirectory:
    return SimulatedFedDirectory()


@pytest.fixture
def processor(store: InstitutionStore, directory: SimulatedFedDirectory) -> InstitutionProcessor:
    return InstitutionProcessor(store, directory)


def test_a_valid_record_becomes_one_enriched_row(processor: InstitutionProcessor, store: InstitutionStore) -> None:
    record = first(Outcome.STORED)
    message = message_for(record, offset=41)
    payload = message.payload

    processor.process(message)

    row = store.fetch(record.record_id)
    assert row is not None
    assert row["batch_id"] == message.batch_id
    assert row["ingested_at"] == message.ingested_at
    assert row["routing_number"] == payload["routing_number"]
    district = int(payload["routing_number"][:2]) % 20
    assert row["fed_district"] == district
    assert row["servicing_fed_office"] is not None
    assert row["normalized_name"] == normalize_name(payload["name"])
    assert row["website_domain"] == website_domain(payload["website"])
    assert (row["source_topic"], row["source_partition"], row["source_offset"]) == (message.topic, 0, 41)
    assert row["delivery_count"] == 1
    assert store.count() == 1


def test_a_wrong_check_digit_is_poison_and_writes_nothing(
    processor: InstitutionProcessor, store: InstitutionStore
) -> None:
    record = first(Outcome.POISON)
    with pytest.raises(PoisonMessageError, match="checksum") as raised:
        processor.process(message_for(record))
    assert raised.value.path == "$.payload.routing_number"
    assert raised.value.reason == "poison"
    assert store.count() == 0


def test_a_rate_limited_lookup_fails_once_then_the_retry_stores_the_row(
    processor: InstitutionProcessor, store: InstitutionStore, directory: SimulatedFedDirectory
) -> None:
    message = message_for(first(Outcome.RATE_LIMITED))
    with pytest.raises(DirectoryRateLimitedError):
        processor.process(message)
    assert store.count() == 0

    processor.process(message)  # what the runner does after its backoff

    assert store.count() == 1
    assert (directory.lookups, directory.refusals) == (2, 1)


def test_processing_a_record_twice_leaves_one_row(processor: InstitutionProcessor, store: InstitutionStore) -> None:
    record = first(Outcome.STORED)
    processor.process(message_for(record, offset=3))
    processor.process(message_for(record, offset=9))  # redelivered after a crash, at a new offset

    row = store.fetch(record.record_id)
    assert store.count() == 1
    assert row is not None
    assert (row["delivery_count"], row["source_offset"]) == (2, 9)


def test_an_older_version_never_overwrites_a_newer_one(
    processor: InstitutionProcessor, store: InstitutionStore
) -> None:
    newer = message_for(first(Outcome.STORED))
    payload = {**newer.payload, "name": "Renamed Bank"}
    older = replace(newer, payload=payload, ingested_at=newer.ingested_at - timedelta(days=1))

    processor.process(newer)
    processor.process(older)

    row = store.fetch(newer.record_id)
    assert row is not None
    assert row["name"] == newer.payload["name"]
    assert row["delivery_count"] == 1


def test_a_whole_sample_batch(processor: InstitutionProcessor, store: InstitutionStore) -> None:
    poison = 0
    for offset, record in enumerate(RECORDS):
        message = message_for(record, offset=offset)
        try:
            processor.process(message)
        except PoisonMessageError:
            poison += 1
        except DirectoryRateLimitedError:
            processor.process(message)
    expected = {r.record_id for r in RECORDS if r.outcome in (Outcome.STORED, Outcome.RATE_LIMITED)}
    assert store.count() == len(expected)
    assert poison == sum(r.outcome is Outcome.POISON for r in RECORDS)
    assert all(store.fetch(record_id) is not None for record_id in expected)


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("First National Bank of Boston, N.A.", "FIRST NATIONAL BANK OF BOSTON"),
        ("The Marsh State Bank", "MARSH STATE BANK"),
        ("  Harlan   &  Okafor Bank, Inc. ", "HARLAN & OKAFOR BANK"),
        ("Brennan Savings Bank, F.S.B.", "BRENNAN SAVINGS BANK"),
        ("The", "THE"),
    ],
)
def test_normalize_name(name: str, normalized: str) -> None:
    assert normalize_name(name) == normalized


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Denver Community Credit Union", "credit_union"),
        ("Nakamura Savings Bank", "savings_institution"),
        ("Omaha Federal Savings and Loan Association", "savings_institution"),
        ("Texas Trust Company", "trust_company"),
        ("First National Bank of Helena", "commercial_bank"),
    ],
)
def test_classify_institution(name: str, kind: str) -> None:
    assert classify_institution(name) == kind


@pytest.mark.parametrize(
    ("website", "domain"),
    [
        ("https://www.Example-Bank.com/about", "example-bank.com"),
        ("http://cu.example.org", "cu.example.org"),
        (None, None),
        ("https://", None),
    ],
)
def test_website_domain(website: str | None, domain: str | None) -> None:
    assert website_domain(website) == domain


def test_eight_threads_at_once_store_every_row_once(processor: InstitutionProcessor, store: InstitutionStore) -> None:
    stored = [r for r in RECORDS if r.outcome is Outcome.STORED]
    errors: list[BaseException] = []

    def work(records: list[SampleRecord]) -> None:
        try:
            for offset, record in enumerate(records):
                processor.process(message_for(record, offset=offset))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(stored[n::8],)) for n in range(8)]  # as the runner's workers do
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert store.count() == len(stored)


def test_the_consumer_runs_eight_records_at_a_time_in_key_order_unless_told_otherwise() -> None:
    env = {"KAFKA_BROKERS": "127.0.0.1:9092"}
    declared = RunnerSettings.from_env(env, defaults_from=InstitutionConsumer).throughput
    assert (declared.max_concurrency, declared.ordering) == (8, Ordering.KEY)
    overridden = RunnerSettings.from_env({**env, "MAX_CONCURRENCY": "1"}, defaults_from=InstitutionConsumer)
    assert overridden.throughput.max_concurrency == 1
