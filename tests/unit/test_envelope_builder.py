"""UUIDv7 batch ids and the envelope a publisher sends (platform standard §4.2)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import orjson
import pytest

from neotool_common.producing.envelope import (
    RECORD_ID_MAX_LENGTH,
    UuidV7Generator,
    build_envelope,
    encode_envelope,
    new_batch_id,
)

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "envelope.v1.json"


class SteppedTime:
    """A ``time_ns`` that returns what the test sets."""

    def __init__(self, millis: int) -> None:
        self.millis = millis

    def __call__(self) -> int:
        return self.millis * 1_000_000 + 123_456


def timestamp_ms(value: uuid.UUID) -> int:
    return value.int >> 80


def counter(value: uuid.UUID) -> int:
    return (value.int >> 64) & 0xFFF


def test_a_batch_id_is_an_rfc_9562_version_7_uuid_of_now() -> None:
    before = time.time_ns() // 1_000_000
    parsed = uuid.UUID(new_batch_id())
    after = time.time_ns() // 1_000_000

    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before <= timestamp_ms(parsed) <= after
    assert str(parsed) == str(parsed).lower()


def test_batch_ids_increase_within_a_process_even_from_many_threads() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(into: list[str]) -> None:
        into.extend(new_batch_id() for _ in range(2_000))

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(ids == sorted(ids) for ids in made)
    assert len({i for ids in made for i in ids}) == 8_000


def test_ids_in_one_millisecond_count_up_and_carry_into_the_next() -> None:
    clock = SteppedTime(1_700_000_000_000)
    generate = UuidV7Generator(time_ns=clock, random_bytes=lambda n: b"\xff" * n)

    ids = [generate() for _ in range(2_050)]

    assert counter(ids[0]) == 0x7FF, "a fresh millisecond starts in the lower half of the counter"
    assert counter(ids[2_047]) == 0xFFE
    assert [timestamp_ms(i) for i in ids[2_048:]] == [clock.millis, clock.millis + 1]
    assert ids == sorted(ids, key=lambda i: i.int)
    assert all(i.version == 7 for i in ids)


def test_a_clock_that_steps_back_does_not_make_ids_go_back() -> None:
    clock = SteppedTime(1_700_000_000_000)
    generate = UuidV7Generator(time_ns=clock)
    first = generate()
    clock.millis -= 5_000

    second = generate()

    assert second.int > first.int
    assert timestamp_ms(second) == timestamp_ms(first)


def test_build_envelope_has_the_four_fields() -> None:
    at = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))

    envelope = build_envelope({"name": "Ada"}, record_id="person-1", ingested_at=at)

    assert envelope["record_id"] == "person-1"
    assert envelope["payload"] == {"name": "Ada"}
    assert envelope["ingested_at"] == "2024-05-01T12:00:00.000000Z"
    assert uuid.UUID(envelope["batch_id"]).version == 7
    assert datetime.fromisoformat(envelope["ingested_at"]) == at


def test_ingested_at_defaults_to_now_in_utc() -> None:
    before = datetime.now(UTC)
    stamped = datetime.fromisoformat(build_envelope({}, record_id="r")["ingested_at"])
    assert before <= stamped <= datetime.now(UTC)
    assert stamped.utcoffset() == timedelta(0)


def test_a_given_batch_id_is_kept_in_canonical_form() -> None:
    v4 = uuid.uuid4()
    assert build_envelope({}, record_id="r", batch_id=str(v4).upper())["batch_id"] == str(v4)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"record_id": ""}, "record_id"),
        ({"record_id": "   "}, "record_id"),
        ({"record_id": "x" * (RECORD_ID_MAX_LENGTH + 1)}, "above the limit"),
        ({"record_id": "r", "batch_id": "batch-42"}, "not a UUID"),
        ({"record_id": "r", "batch_id": str(uuid.uuid1())}, "version-1"),
        ({"record_id": "r", "ingested_at": datetime(2024, 5, 1, 12, 0)}, "timezone-aware"),
    ],
)
def test_bad_arguments_are_refused(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_envelope({"a": 1}, **arguments)  # type: ignore[arg-type]


def test_a_payload_must_be_a_mapping_and_is_copied() -> None:
    with pytest.raises(TypeError, match="mapping"):
        build_envelope(["not", "a", "mapping"], record_id="r")  # type: ignore[arg-type]
    payload = {"n": 1}
    envelope = build_envelope(payload, record_id="r")
    payload["n"] = 2
    assert envelope["payload"] == {"n": 1}


def test_the_encoded_envelope_matches_the_published_schema() -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    at = datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
    envelope = orjson.loads(encode_envelope(build_envelope({"when": at}, record_id="r-1", ingested_at=at)))

    assert list(validator.iter_errors(envelope)) == []
    assert envelope["payload"] == {"when": "2024-02-29T23:59:59.999999+00:00"}
    assert list(validator.iter_errors({**envelope, "batch_id": str(uuid.uuid1())})) != [], "the check can fail"
