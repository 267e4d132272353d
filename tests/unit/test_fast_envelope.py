"""FastEnvelope, the reader's fast path: it answers for the common envelope and defers everything else.

Its contract is soundness: whatever it accepts, the strict path (JsonObjectDecoder and the envelope schema)
accepts with equal values of equal types; for anything it cannot prove, it answers None and the strict path
decides, with the reason and the path. These tests hold it to that on the edge cases of its proofs and on
seeded mutations of real envelopes.
"""

from __future__ import annotations

import json
import math
import random
import struct
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

from neotool_common.errors import DecodeError, InvalidRecordError, SchemaValidationError
from neotool_common.records.decoding import JsonObjectDecoder
from neotool_common.records.fast import RFC_3339, FastEnvelope
from neotool_common.records.payload_struct import payload_struct
from neotool_common.records.validation import ENVELOPE_SCHEMA, EnvelopeReader, load_schema
from soak.corpus import bad_records, tricky_good_records

READER = EnvelopeReader()
FAST = FastEnvelope(load_schema(ENVELOPE_SCHEMA), max_bytes=1_048_576, max_depth=64)
BATCH = "0190b0d8-7c2a-7b3e-9f10-2d4c5e6f7a8b"
HEAD = b'{"batch_id":"%s","record_id":"r-1","ingested_at":"2024-05-01T00:00:00.5Z","payload":' % BATCH.encode()


# The same envelope as its own encoding (msgspec's: compact, in order, six fraction digits): the canonical route.
CANONICAL_HEAD = HEAD.replace(b".5Z", b".500000Z")


def value(payload: bytes) -> bytes:
    return HEAD + payload + b"}"


def canonical(payload: bytes) -> bytes:
    return CANONICAL_HEAD + payload + b"}"


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1, 1.0 and True are equal in Python, not here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def strict(raw: bytes | None) -> tuple[Any, ...] | InvalidRecordError:
    try:
        return READER._strict(raw)  # the reference the fast path is held to
    except InvalidRecordError as exc:
        return exc


def assert_sound(raw: bytes) -> tuple[Any, ...] | None:
    fast = FAST.read(raw)
    if fast is not None:
        expected = strict(raw)
        assert not isinstance(expected, InvalidRecordError), f"fast path accepted what the strict path rejects: {raw!r}"
        assert same(fast, expected), raw
    return fast


def test_the_common_envelope_takes_the_fast_path_with_the_strict_paths_values() -> None:
    raw = value('{"name":"Zürich 🏦","n":12345678901234,"f":-0.5,"ok":true,"none":null,"l":[{}],"neg":-0}'.encode())
    assert assert_sound(raw) is not None


def test_the_shipped_schema_enables_the_canonical_route() -> None:
    assert load_schema(ENVELOPE_SCHEMA)["properties"]["ingested_at"]["pattern"] == RFC_3339
    assert FAST._decode_flat is not None


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(canonical(b"{}"), id="empty payload"),
        pytest.param(canonical('{"name":"Zürich 🏦","n":-12,"f":0.5,"ok":false,"none":null}'.encode()), id="flat"),
        pytest.param(canonical(b'{"l":[1,2.5,{"k":[]}],"o":{"p":{}}}'), id="nested"),
        pytest.param(CANONICAL_HEAD.replace(b".500000Z", b"+05:30") + b"{}}", id="an offset"),
        pytest.param(CANONICAL_HEAD.replace(b".500000Z", b"Z").replace(b"2024", b"0001") + b"{}}", id="year 1"),
    ],
)
def test_a_value_that_is_its_own_encoding_takes_the_canonical_route(raw: bytes) -> None:
    assert FAST._canonical(raw) is not None
    fast = assert_sound(raw)
    assert fast is not None
    expected = strict(raw)
    assert not isinstance(expected, InvalidRecordError)
    assert fast[2].utcoffset() == expected[2].utcoffset()  # the same offset, not only the same instant


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(value(b"{}"), id="five fraction digits fewer"),
        pytest.param(CANONICAL_HEAD.replace(b".500000Z", b".500Z") + b"{}}", id="milliseconds"),
        pytest.param(CANONICAL_HEAD.replace(b".500000Z", b"+00:00") + b"{}}", id="UTC as an offset"),
        pytest.param(CANONICAL_HEAD.replace(b".500000Z", b"z") + b"{}}", id="lower-case z"),
        pytest.param(CANONICAL_HEAD.replace(b"T", b" ") + b"{}}", id="a space for T"),
        pytest.param(canonical(b'{"n":1e5}'), id="a number not in its shortest form"),
        pytest.param(canonical(b'{"a": 1}'), id="white space"),
        pytest.param(
            b'{"record_id":"r-1","batch_id":"%s","ingested_at":"2024-05-01T00:00:00Z","payload":{}}' % BATCH.encode(),
            id="members in another order",
        ),
    ],
)
def test_other_layouts_of_a_valid_envelope_take_the_counting_route(raw: bytes) -> None:
    assert FAST._canonical(raw) is None
    assert assert_sound(raw) is not None


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(CANONICAL_HEAD.replace(b".500000Z", b"") + b"{}}", id="no offset"),
        pytest.param(CANONICAL_HEAD.replace(b"2024-05-01", b"2024-02-30") + b"{}}", id="no such day"),
        pytest.param(canonical(b'{"a":1,"a":1}'), id="a duplicate"),
        pytest.param(CANONICAL_HEAD.replace(b'"r-1"', b'""') + b"{}}", id="an empty record_id"),
    ],
)
def test_what_the_schema_rejects_never_passes_the_canonical_route(raw: bytes) -> None:
    assert FAST._canonical(raw) is None or FAST.read(raw) is None
    assert FAST.read(raw) is None
    assert isinstance(strict(raw), InvalidRecordError)


def test_a_custom_ingested_at_pattern_keeps_to_the_counting_route() -> None:
    schema = load_schema(ENVELOPE_SCHEMA)
    stricter = {**schema["properties"]["ingested_at"], "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$"}
    custom = FastEnvelope({**schema, "properties": {**schema["properties"], "ingested_at": stricter}}, 1 << 20, 64)
    assert custom._decode_flat is None
    assert custom.read(canonical(b"{}")) is None  # the fraction breaks this pattern: the canonical route would pass it
    assert custom.read(CANONICAL_HEAD.replace(b".500000Z", b"Z") + b"{}}") is not None


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"a":1,"a":2}', id="duplicate in payload"),
        pytest.param(b'{"a":{"k":1,"k":1}}', id="duplicate in a nested object"),
        pytest.param(b'{"l":[{"k":1},{"k":2,"k":3}]}', id="duplicate in an object in an array"),
        pytest.param(b'{"a":1, "a" :2}', id="duplicate with white space before the colon"),
        pytest.param(b'{"a":"x","a":"x"}', id="duplicate with the same string value"),
    ],
)
def test_duplicate_keys_leave_the_fast_path_and_are_rejected_with_their_path(payload: bytes) -> None:
    raw = value(payload)
    assert FAST.read(raw) is None
    error = strict(raw)
    assert isinstance(error, DecodeError)
    assert "duplicate key" in str(error)


def test_a_duplicate_envelope_member_leaves_the_fast_path() -> None:
    raw = HEAD.replace(b'"payload":', b'"record_id":"r-2","payload":') + b"{}}"
    assert json.loads(raw)["record_id"] == "r-2"
    assert FAST.read(raw) is None
    assert isinstance(strict(raw), DecodeError)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"s":"a\\u0000b"}', id="escaped U+0000"),
        pytest.param(b'{"s\\u0000":1}', id="escaped U+0000 in a key"),
        pytest.param(b'{"s":"\\ud800"}', id="escaped lone surrogate"),
        pytest.param(b'{"s":"C:\\\\u0000"}', id="escaped backslash before u0000"),
        pytest.param(b'{"s":"\\u0022:"}', id="escaped quote"),
    ],
)
def test_any_escape_defers_to_the_strict_path(payload: bytes) -> None:
    assert FAST.read(value(payload)) is None


@pytest.mark.parametrize(
    "number",
    [b"18446744073709551615", b"18446744073709551616", b"-9223372036854775809", b"9" * 300, b"9" * 400, b"1e400"],
)
def test_integers_beyond_64_bits_and_overflows_defer_to_the_strict_path(number: bytes) -> None:
    raw = value(b'{"n":' + number + b"}")
    fast = assert_sound(raw)
    if fast is not None:
        assert fast[3]["n"] == int(number)


@pytest.mark.parametrize("wrap", [value, canonical], ids=["counting route", "canonical route"])
def test_an_integer_a_double_cannot_hold_leaves_the_fast_path_for_the_strict_one_which_refuses_it(
    wrap: Callable[[bytes], bytes],
) -> None:
    largest = int(1.7976931348623157e308)  # the largest double, as an integer: the strict path keeps it exactly
    assert not isinstance(strict(wrap(b'{"n":%d}' % largest)), InvalidRecordError)
    assert_sound(wrap(b'{"n":%d}' % largest))  # 309 digits too: left to the strict path, which accepts it
    for number in (2**1024 - 2**970, -(2**1024), 10**400):
        raw = wrap(b'{"n":%d}' % number)
        assert FAST.read(raw) is None
        assert isinstance(strict(raw), DecodeError)


@pytest.mark.parametrize("number", [b"-0", b"-0.0", b"0e0", b"1E5", b"1e-400", b"0.1000000000000000055511151231257827"])
def test_numbers_decode_to_the_strict_paths_value_and_type(number: bytes) -> None:
    assert_sound(value(b'{"n":' + number + b"}"))


def test_random_floats_decode_exactly_as_the_strict_path() -> None:
    rng = random.Random(19)
    for _ in range(2000):
        text = rng.choice([repr, lambda f: f"{f:.17g}", lambda f: f"{f:.3e}"])(
            rng.uniform(-1e6, 1e6) * 10 ** rng.randint(-300, 300)
        )
        assert_sound(value(b'{"n":' + text.encode() + b"}"))


@pytest.mark.parametrize("flat_first", [True, False], ids=["flat decoder first", "nested decoder first"])
@pytest.mark.parametrize("wrap", [value, canonical], ids=["counting route", "canonical route"])
def test_nesting_at_the_limit_is_fast_and_beyond_it_is_rejected(
    wrap: Callable[[bytes], bytes], flat_first: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FAST, "_flat_first", flat_first)  # whichever decoder the last payload needed
    # The envelope is level 1, the payload level 2: 63 nested objects from the payload on reach the limit of 64.
    inner = 63
    deep = wrap(b'{"a":' * inner + b"1" + b"}" * inner)
    assert not isinstance(strict(deep), InvalidRecordError)
    assert assert_sound(deep) is not None
    deeper = wrap(b'{"a":' * (inner + 1) + b"1" + b"}" * (inner + 1))
    assert FAST.read(deeper) is None
    assert isinstance(strict(deeper), DecodeError)
    arrays = wrap(b'{"a":' + b"[" * 63 + b"]" * 63 + b"}")
    assert FAST.read(arrays) is None
    assert isinstance(strict(arrays), DecodeError)
    braces_in_text = wrap(b'{"a":"' + b"{[" * 40 + b'"}')  # not nested at all: the strict path says so
    assert FAST.read(braces_in_text) is None
    assert not isinstance(strict(braces_in_text), InvalidRecordError)


def test_the_canonical_route_starts_with_the_decoder_the_last_payload_needed() -> None:
    reader = FastEnvelope(load_schema(ENVELOPE_SCHEMA), max_bytes=1_048_576, max_depth=64)
    flat, nested = canonical(b'{"a":1,"b":"x"}'), canonical(b'{"a":[1,{"b":null}]}')
    steps = [(flat, True), (nested, False), (nested, False), (flat, True), (flat, True), (nested, False)]
    for raw, flat_first_after in steps:
        fields = reader.read(raw)
        assert fields is not None
        assert reader._canonical(raw) is not None
        expected = strict(raw)
        assert not isinstance(expected, InvalidRecordError)
        assert same(fields, expected), raw
        assert reader._flat_first is flat_first_after, raw


def test_a_flat_value_the_flat_decoder_refused_is_not_decoded_again_as_a_nested_one() -> None:
    reader = FastEnvelope(load_schema(ENVELOPE_SCHEMA), max_bytes=1_048_576, max_depth=64)
    nested_decodings: list[bytes] = []
    decode_nested = reader._decode_nested
    assert decode_nested is not None

    def counted(raw: bytes) -> Any:
        nested_decodings.append(raw)
        return decode_nested(raw)

    reader._decode_nested = counted
    no_record_id = CANONICAL_HEAD.replace(b'"record_id":"r-1",', b"") + b'{"a":1}}'  # poison, and flat
    assert reader._canonical(no_record_id) is None
    assert nested_decodings == [], "nothing nested in the text: the general decoder would refuse it too"
    nested_poison = CANONICAL_HEAD.replace(b'"record_id":"r-1",', b"") + b'{"a":[1]}}'
    assert reader._canonical(nested_poison) is None
    assert nested_decodings == [nested_poison]
    assert isinstance(strict(no_record_id), SchemaValidationError)


def test_a_depth_limit_below_a_flat_payloads_leaves_every_value_to_the_strict_path() -> None:
    # A flat payload is level 2: with a limit of 1 the strict path rejects every envelope, and so must the fast one.
    shallow = FastEnvelope(load_schema(ENVELOPE_SCHEMA), max_bytes=1_048_576, max_depth=1)
    for raw in (canonical(b"{}"), canonical(b'{"a":1}'), value(b"{}")):
        assert shallow.read(raw) is None, raw
        with pytest.raises(DecodeError, match="nested deeper than 1 levels"):
            JsonObjectDecoder(max_depth=1).decode(raw)


def test_the_batch_id_is_checked_once_per_value_and_a_changed_one_again() -> None:
    assert FAST.read(value(b"{}")) is not None
    assert FAST.read(value(b"{}").replace(BATCH.encode(), b"c232ab00-9414-11ec-b3c8-9f6bdeced846")) is None
    assert FAST.read(value(b"{}").replace(BATCH.encode(), BATCH.upper().encode())) is not None
    assert FAST.read(value(b"{}").replace(BATCH.encode(), BATCH.encode() + b"\n")) is None


@pytest.mark.parametrize("wrap", [value, canonical], ids=["counting route", "canonical route"])
def test_an_empty_batch_id_is_checked_by_a_reader_that_has_not_seen_a_valid_one(wrap: Callable[[bytes], bytes]) -> None:
    fresh = FastEnvelope(load_schema(ENVELOPE_SCHEMA), 1_048_576, 64)
    raw = wrap(b"{}").replace(BATCH.encode(), b"")
    assert fresh.read(raw) is None
    assert isinstance(strict(raw), SchemaValidationError)


@pytest.mark.parametrize(
    ("record_id", "fast"),
    [("", False), ("é" * 512, True), ("é" * 513, False), ("x", True)],
)
def test_record_id_length_is_counted_in_characters(record_id: str, fast: bool) -> None:
    raw = value(b"{}").replace(b'"r-1"', json.dumps(record_id, ensure_ascii=False).encode())
    assert (assert_sound(raw) is not None) is fast


@pytest.mark.parametrize(
    "moment",
    [
        "2024-05-01t00:00:00z",
        "2024-05-01 00:00:00+01:30",
        "2024-05-01T00:00:00.1234567Z",
        "2024-05-01T00:00:00+0000",
        "2024-05-01T00:00:00",
        "2024-02-30T00:00:00Z",
        "2024-05-01T00:00:60Z",
        "2024-05-01T00:00:00+00:60",
        "2024-05-01T00:00:00Z\n",
    ],
)
def test_ingested_at_is_held_to_the_schema_and_iso_8601(moment: str) -> None:
    assert_sound(value(b"{}").replace(b"2024-05-01T00:00:00.5Z", json.dumps(moment).encode()[1:-1]))


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(value(b"[1]"), id="payload not an object"),
        pytest.param(HEAD.replace(b'"payload":', b'"extra":1,"payload":') + b"{}}", id="an extra envelope member"),
        pytest.param(HEAD.replace(b'"r-1"', b"7") + b"{}}", id="record_id a number"),
        pytest.param(b" " + value(b"{}") + b"\n", id="surrounding white space"),
        pytest.param(value(b'{"n":NaN}'), id="NaN"),
    ],
)
def test_other_shapes_are_sound(raw: bytes) -> None:
    assert_sound(raw)


def test_the_bad_input_corpus_never_takes_the_fast_path_wrongly() -> None:
    for planned in [*bad_records(), *tricky_good_records()]:
        if planned.value is not None:
            assert_sound(planned.value)


def test_seeded_mutations_of_envelopes_are_sound() -> None:
    rng = random.Random(7)
    base = value(b'{"name":"A \\"B\\"","address":{"city":"X","zip":"01234"},"l":[1,2.5,-3e2,true,null],"n":12}')
    plain = value(b'{"name":"A B","address":{"city":"X","zip":"01234"},"l":[1,2.5,-3e2,true,null],"n":12}')
    encoded = canonical(b'{"name":"A B","address":{"city":"X","zip":"01234"},"l":[1,2.5,-300.0,true,null],"n":12}')
    assert FAST._canonical(encoded) is not None
    alphabet = b'{}[]":,\\ \t\n0123456789.eE+-tfnaulr\x00\xff\xc3\xa9'
    fast = 0
    for _ in range(20_000):
        raw = bytearray(rng.choice([base, plain, encoded]))
        for _ in range(rng.randint(1, 3)):
            where = rng.randrange(len(raw))
            kind = rng.randrange(4)
            if kind == 3 and raw[where] in b"{,":  # a member repeated: a duplicate key, often a valid one
                raw[where + 1 : where + 1] = rng.choice([b'"name":"A B",', b'"city":"X",', b'"n":1,'])
            elif kind == 0:
                raw[where] = rng.choice(alphabet)
            elif kind == 1:
                raw.insert(where, rng.choice(alphabet))
            else:
                del raw[where]
        fast += assert_sound(bytes(raw)) is not None
    assert fast > 500  # the mutations that are still valid envelopes mostly stay on the fast path


def _random_text(rng: random.Random) -> str:
    alphabet = "aZ09 {}[]:,/é\u2028\u007f\ufeff🏦\U0010fffd"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))


def _random_json(rng: random.Random, depth: int) -> Any:
    kind = rng.randrange(9 if depth < 70 else 6)
    if kind == 0:
        return rng.choice([0, -1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**308, 2**1024])
    if kind == 1:
        number = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        return 0.0 if math.isnan(number) or math.isinf(number) else number
    if kind == 2:
        return rng.choice([True, False, None])
    if kind in (3, 4, 5):
        return _random_text(rng)
    if kind in (6, 7):
        return {_random_text(rng): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def _random_moment(rng: random.Random) -> datetime:
    offset = timezone(timedelta(minutes=rng.randint(-1439, 1439))) if rng.random() < 0.5 else UTC
    moment = datetime(rng.randint(1, 9999), rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23))
    return moment.replace(microsecond=rng.choice([0, rng.randrange(1_000_000)]), tzinfo=offset)


def test_random_envelopes_written_by_an_encoder_are_sound_on_the_canonical_route() -> None:
    rng = random.Random(23)
    canonical_route = 0
    for _ in range(3000):
        payload = {_random_text(rng): _random_json(rng, 3) for _ in range(rng.randint(0, 4))}
        if rng.random() < 0.05:  # a chain reaching past the depth limit
            for _ in range(rng.randint(60, 66)):
                payload = {"a": payload}
        record_id = "é" * rng.choice([0, 1, 511, 512, 513]) if rng.random() < 0.1 else f"r-{rng.randrange(10**6)}"
        batch_id = rng.choice([BATCH, BATCH.upper(), str(uuid.uuid4()), str(uuid.uuid1()), ""])
        raw = msgspec.json.encode(
            {"batch_id": batch_id, "record_id": record_id, "ingested_at": _random_moment(rng), "payload": payload}
        )
        fast = FAST.read(raw)
        if fast is not None:
            expected = strict(raw)
            assert not isinstance(expected, InvalidRecordError), raw
            assert same(fast, expected), raw
            assert fast[2].utcoffset() == expected[2].utcoffset()
        canonical_route += FAST._canonical(raw) is not None
    assert canonical_route > 1000


# -- a payload schema the fast path decides itself (records/payload_struct.py) ---------------------------------

INSTITUTION = load_schema(
    Path(__file__).parents[2]
    / "examples/institution-enhancement/src/institution_enhancement/schemas/institution.v1.json"
)
SCHEMA_READER = EnvelopeReader(INSTITUTION)
SCHEMA_FAST = FastEnvelope(load_schema(ENVELOPE_SCHEMA), 1_048_576, 64, payload_struct(INSTITUTION))
GOOD_PAYLOAD = {
    "institution_id": "FDIC-0000042",
    "name": "Springfield Trust Company",
    "routing_number": "061000052",
    "country": "US",
    "state": "IL",
    "website": "https://springfield.example/",
    "total_assets_usd": 123456789,
}


def strict_with_schema(raw: bytes) -> tuple[Any, ...] | InvalidRecordError:
    try:
        fields = SCHEMA_READER._strict(raw)  # the reference: strict decoding, then the compiled payload schema
        SCHEMA_READER._validate_payload(fields[3])  # type: ignore[misc]
    except InvalidRecordError as exc:
        return exc
    return fields


def assert_schema_sound(raw: bytes) -> tuple[Any, ...] | None:
    fast = SCHEMA_FAST.read(raw)
    if fast is not None:
        expected = strict_with_schema(raw)
        assert not isinstance(expected, InvalidRecordError), f"fast path accepted what the schema rejects: {raw!r}"
        assert fast[:3] == expected[:3]
        assert same(dict(sorted(fast[3].items())), dict(sorted(expected[3].items()))), raw
    return fast


def test_the_examples_payload_schema_becomes_a_struct_and_a_valid_payload_stays_on_the_fast_path() -> None:
    assert SCHEMA_READER._validate_fast_payload is None  # the struct decides; the compiled schema is not run
    assert assert_schema_sound(value(json.dumps(GOOD_PAYLOAD).encode())) is not None
    message = SCHEMA_READER.read(value(json.dumps(GOOD_PAYLOAD).encode()), None, (), "t", 0, 0, None)
    assert message.payload == GOOD_PAYLOAD


@pytest.mark.parametrize(
    ("member", "bad"),
    [
        ("country", "US\n"),
        ("country", "us"),
        ("routing_number", "12345678"),
        ("total_assets_usd", -1),
        ("total_assets_usd", True),
        ("total_assets_usd", 1.0),
        ("total_assets_usd", 2**70),
        ("name", ""),
        ("name", "x" * 201),
        ("state", None),
        ("surprise", 1),
    ],
)
def test_payload_failures_leave_the_fast_path_and_get_the_schemas_own_error(member: str, bad: Any) -> None:
    raw = value(json.dumps({**GOOD_PAYLOAD, member: bad}).encode())
    assert_schema_sound(raw)
    if member == "total_assets_usd" and bad in (1.0, 2**70):
        return  # the schema takes 1.0 and big integers; the strict path decides it
    assert SCHEMA_FAST.read(raw) is None
    with pytest.raises(SchemaValidationError) as raised:
        SCHEMA_READER.read(raw, None, (), "t", 0, 0, None)
    assert raised.value.path.startswith("$.payload")
    assert raised.value.record_id == "r-1"


def test_missing_required_members_and_duplicates_in_the_payload_leave_the_fast_path() -> None:
    missing = {k: v for k, v in GOOD_PAYLOAD.items() if k != "routing_number"}
    assert SCHEMA_FAST.read(value(json.dumps(missing).encode())) is None
    duplicated = json.dumps(GOOD_PAYLOAD).encode()[:-1] + b', "country": "US"}'
    assert SCHEMA_FAST.read(value(duplicated)) is None
    assert isinstance(strict_with_schema(value(duplicated)), DecodeError)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"type": "string"}}},
        {"type": "object", "properties": {"a": {"type": "string", "default": "x"}}, "additionalProperties": False},
        {"type": "object", "properties": {"a": {"enum": ["x"]}}, "additionalProperties": False},
        {"type": "object", "properties": {"a": {"type": "object"}}, "additionalProperties": False},
        {"type": "object", "properties": {"a-b": {"type": "string"}}, "additionalProperties": False},
        {"type": "object", "properties": {"a": {"type": ["string", "null"]}}, "additionalProperties": False},
        {"type": "object", "properties": {"a": {"type": "string", "format": "email"}}, "additionalProperties": False},
        {"type": "object", "properties": {}, "required": ["a"], "additionalProperties": False},
        {"type": "object", "properties": {"a": {"type": "integer", "minimum": 0.5}}, "additionalProperties": False},
    ],
)
def test_schemas_beyond_the_simple_subset_keep_the_compiled_validator(schema: dict[str, Any]) -> None:
    assert payload_struct(schema) is None


@pytest.mark.parametrize("bound", [{"minimum": 0.5}, {"maximum": 1e300}, {"exclusiveMaximum": 10.0}])
@pytest.mark.parametrize("kind", ["integer", "number"])
def test_a_bound_that_is_not_an_integer_is_left_to_the_compiled_schema(kind: str, bound: dict[str, float]) -> None:
    schema = {"type": "object", "properties": {"a": {"type": kind, **bound}}, "additionalProperties": False}
    assert payload_struct(schema) is None  # msgspec takes only integer bounds on integers
    assert EnvelopeReader(schema)._validate_fast_payload is not None, "the reader is built, with the compiled schema"


def test_seeded_payload_mutations_are_decided_as_the_compiled_schema_decides() -> None:
    rng = random.Random(11)
    choices: list[Any] = ["", "US", "US\n", "FDIC-1", "061000052", "x" * 150, 0, -5, 7, 1.5, 2.0, True, None, [], {}]
    accepted = 0
    for _ in range(3000):
        payload = dict(GOOD_PAYLOAD)
        for _ in range(rng.randint(0, 2)):
            member = rng.choice([*INSTITUTION["properties"], "extra"])
            if rng.random() < 0.2:
                payload.pop(member, None)
            else:
                payload[member] = rng.choice(choices)
        items = list(payload.items())
        rng.shuffle(items)
        accepted += assert_schema_sound(value(json.dumps(dict(items)).encode())) is not None
    assert accepted > 100


NUMBERS_AND_NULLS = {
    "type": "object",
    "properties": {
        "ratio": {"type": "number", "minimum": 0, "exclusiveMaximum": 10},
        "count": {"type": "integer", "minimum": 1},
        "gone": {"type": "null"},
    },
    "required": ["ratio"],
    "additionalProperties": False,
}


def test_bounded_numbers_and_null_members_are_decided_in_the_struct_as_the_compiled_schema_decides() -> None:
    struct = payload_struct(NUMBERS_AND_NULLS)
    assert struct is not None, "numbers with bounds and null members are in the simple subset"
    reader = EnvelopeReader(NUMBERS_AND_NULLS)  # the consumer starts: a bounded number once made msgspec raise
    fast = FastEnvelope(load_schema(ENVELOPE_SCHEMA), 1_048_576, 64, struct)
    valid = [b'{"ratio":0}', b'{"ratio":9.5}', b'{"ratio":3,"count":1,"gone":null}']
    invalid = [
        b'{"ratio":-0.5}', b'{"ratio":10}', b'{"ratio":10.0}', b'{"ratio":1,"count":0}', b'{"ratio":1,"count":1.5}',
        b'{"ratio":1,"gone":0}', b'{"ratio":true}', b'{"count":2}',
    ]  # fmt: skip
    for payload in valid + invalid:
        raw = canonical(payload)
        try:
            fields = reader._strict(raw)
            reader._validate_payload(fields[3])  # type: ignore[misc]
        except InvalidRecordError:
            fields = None
        got = fast.read(raw)
        assert (got is not None) == (payload in valid), payload
        assert (fields is not None) == (payload in valid), payload
        if got is not None and fields is not None:
            assert same(msgspec.to_builtins(got[3]), fields[3]), payload


def test_values_are_remembered_for_members_that_repeat_and_identifiers_are_searched_each_time() -> None:
    fast = FastEnvelope(load_schema(ENVELOPE_SCHEMA), 1_048_576, 64, payload_struct(INSTITUTION))
    members = {member[0]: member for member in fast._patterns}
    for n in range(2 * 4096 + 10):  # an identifier new every time, the same country and one of two states
        payload = dict(GOOD_PAYLOAD, institution_id=f"FDIC-{n:07d}", state=("IL", "OR")[n % 2])
        assert fast.read(canonical(json.dumps(payload, separators=(",", ":")).encode())) is not None
    assert members["institution_id"][2] is None, "its memory filled with new values only: no longer kept"
    assert members["country"][2] == {"US"}
    assert members["state"][2] == {"IL", "OR"}
    for bad in ("fdic-1", "FDIC-" + "9" * 21):  # searched, not remembered: a bad one is still refused
        payload = dict(GOOD_PAYLOAD, institution_id=bad)
        raw = canonical(json.dumps(payload, separators=(",", ":")).encode())
        assert fast.read(raw) is None
        assert isinstance(strict_with_schema(raw), SchemaValidationError)
