"""The sample generator the demo and the integration tests publish: deterministic, realistic, marked."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest
from conftest import message_for

from institution_enhancement.flows.consumer import InstitutionConsumer
from institution_enhancement.tasks.directory import RATE_LIMITED_ONCE, SIMULATE_HEADER
from institution_enhancement.tasks.routing import InvalidRoutingNumberError, parse_routing_number
from institution_enhancement.tasks.samples import Outcome, sample_records
from neotool_common.errors import SchemaValidationError
from neotool_common.records.validation import EnvelopeReader


def test_the_same_seed_gives_the_same_records_and_another_seed_others() -> None:
    assert sample_records(50, seed=3) == sample_records(50, seed=3)
    other = sample_records(50, seed=4)
    assert {r.record_id for r in sample_records(50, seed=3)}.isdisjoint(r.record_id for r in other)


def test_outcome_counts_follow_the_ratios() -> None:
    records = sample_records(400, seed=9, poison_ratio=0.05, rate_limited_ratio=0.02, invalid_ratio=0.01)
    assert Counter(r.outcome for r in records) == {
        Outcome.STORED: 400 - 20 - 8 - 4,
        Outcome.POISON: 20,
        Outcome.RATE_LIMITED: 8,
        Outcome.INVALID: 4,
    }


def test_a_small_batch_still_gets_one_of_each_requested_kind() -> None:
    records = sample_records(5, seed=2, poison_ratio=0.01, rate_limited_ratio=0.01, invalid_ratio=0.01)
    assert Counter(r.outcome for r in records) == {
        Outcome.STORED: 2,
        Outcome.POISON: 1,
        Outcome.RATE_LIMITED: 1,
        Outcome.INVALID: 1,
    }


def test_records_are_valid_envelopes_of_one_batch_keyed_on_record_id() -> None:
    records = sample_records(100, seed=5, invalid_ratio=0.0)
    batch_ids = {r.envelope["batch_id"] for r in records}
    assert len(batch_ids) == 1
    assert uuid.UUID(batch_ids.pop()).version == 4
    assert len({r.record_id for r in records}) == 100
    for record in records:
        message = message_for(record)  # decoded and validated like the runner does
        assert record.key == record.record_id.encode() == message.record_id.encode()
        assert message.ingested_at.utcoffset() is not None


def test_each_outcome_is_marked_the_way_the_consumer_recognises_it() -> None:
    reader = EnvelopeReader(InstitutionConsumer.payload_schema)
    for record in sample_records(300, seed=8, invalid_ratio=0.02):
        throttled = (SIMULATE_HEADER, RATE_LIMITED_ONCE.encode()) in record.headers
        assert throttled is (record.outcome is Outcome.RATE_LIMITED)
        if record.outcome is Outcome.INVALID:
            with pytest.raises(SchemaValidationError) as raised:
                reader.read(record.value, record.key, record.headers, "t", 0, 0, None)
            assert raised.value.path == "$.payload.routing_number"
            continue
        routing_number = record.envelope["payload"]["routing_number"]
        if record.outcome is Outcome.POISON:
            with pytest.raises(InvalidRoutingNumberError, match="checksum"):
                parse_routing_number(routing_number)
        else:
            assert parse_routing_number(routing_number).fed_district is not None


def test_thrift_names_get_thrift_routing_numbers_and_no_bic() -> None:
    for record in sample_records(200, seed=6, poison_ratio=0, rate_limited_ratio=0):
        payload = record.envelope["payload"]
        routing = parse_routing_number(payload["routing_number"])
        is_thrift = "Credit Union" in payload["name"] or "Savings" in payload["name"]
        assert (routing.routing_class.value == "thrift") is is_thrift
        assert payload["institution_id"].startswith("NCUA-") is ("Credit Union" in payload["name"])
        assert ("swift_bic" in payload) <= (not is_thrift)
