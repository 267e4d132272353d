"""EnvelopeReader: envelope and payload failures are SchemaValidationError (dlq.reason=validation) with a path."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pydantic
import pytest

from neotool_common.errors import ConfigurationError, DecodeError, SchemaValidationError
from neotool_common.records.message import Message
from neotool_common.records.validation import EnvelopeReader

UUID_V7 = "018f3e1c-7b2a-7cde-8f00-0123456789ab"
PAYLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["routing_number"],
    "properties": {
        "routing_number": {"type": "string", "pattern": "^[0-9]{9}$"},
        "branches": {"type": "array", "items": {"type": "object", "properties": {"zip": {"type": "string"}}}},
    },
    "additionalProperties": False,
}


class Institution(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)

    routing_number: str
    branches: list[dict[str, int]] = []


def envelope(**fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "batch_id": str(uuid.uuid4()),
        "record_id": "inst-1",
        "ingested_at": "2024-05-01T12:00:00Z",
        "payload": {"routing_number": "011000015"},
    }
    document.update(fields)
    return {k: v for k, v in document.items() if v is not ...}


def read(document: dict[str, Any], reader: EnvelopeReader | None = None) -> Message:
    value = json.dumps(document).encode()
    return (reader or EnvelopeReader()).read(value, b"k", (("h", b"v"),), "bank.v1", 3, 42, 1_700_000_000_000)


def invalid(document: dict[str, Any], reader: EnvelopeReader | None = None) -> SchemaValidationError:
    with pytest.raises(SchemaValidationError) as raised:
        read(document, reader)
    assert raised.value.reason == "validation"
    return raised.value


def test_a_valid_envelope_becomes_a_message_with_its_coordinates() -> None:
    document = envelope()
    message = read(document)
    assert (message.record_id, message.batch_id) == ("inst-1", document["batch_id"])
    assert message.payload == document["payload"]
    assert message.ingested_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert (message.topic, message.partition, message.offset) == ("bank.v1", 3, 42)
    assert message.timestamp_ms == 1_700_000_000_000
    assert (message.key, message.headers, message.raw) == (b"k", (("h", b"v"),), json.dumps(document).encode())


@pytest.mark.parametrize("field", ["batch_id", "record_id", "ingested_at", "payload"])
def test_a_missing_envelope_field_points_at_itself(field: str) -> None:
    error = invalid(envelope(**{field: ...}))
    assert error.path == f"$.{field}"
    assert field in str(error)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("batch_id", 17, "must be string"),
        ("record_id", 17, "must be string"),
        ("record_id", "", "longer than or equal to 1"),
        ("record_id", "r" * 513, "shorter than or equal to 512"),
        ("ingested_at", 1714564800, "must be string"),
        ("payload", ["not", "an", "object"], "must be object"),
        ("payload", None, "must be object"),
    ],
)
def test_a_wrongly_typed_envelope_field_is_named(field: str, value: Any, message: str) -> None:
    error = invalid(envelope(**{field: value}))
    assert error.path == f"$.{field}"
    assert message in str(error)


def test_extra_envelope_fields_are_accepted_for_forward_compatibility() -> None:
    assert read(envelope(schema_version=2, source="core-banking")).record_id == "inst-1"


@pytest.mark.parametrize(
    "batch_id",
    [
        pytest.param(str(uuid.uuid1()), id="v1"),
        pytest.param(str(uuid.uuid3(uuid.NAMESPACE_DNS, "x")), id="v3"),
        pytest.param("00000000-0000-0000-0000-000000000000", id="nil"),
        pytest.param("018f3e1c-7b2a-7cde-cf00-0123456789ab", id="v7 with a wrong variant"),
        pytest.param(uuid.uuid4().hex, id="without dashes"),
        pytest.param("{" + str(uuid.uuid4()) + "}", id="braces"),
        pytest.param(str(uuid.uuid4()) + "\n", id="trailing newline"),
        pytest.param("not-a-uuid", id="text"),
    ],
)
def test_batch_id_must_be_a_uuid_v4_or_v7(batch_id: str) -> None:
    error = invalid(envelope(batch_id=batch_id))
    assert error.path == "$.batch_id"


@pytest.mark.parametrize(
    "batch_id",
    [str(uuid.uuid4()), UUID_V7, UUID_V7.upper(), str(uuid.uuid4()).upper()],
    ids=["v4", "v7", "v7-upper", "v4-upper"],
)
def test_uuid_v4_and_v7_batch_ids_are_accepted(batch_id: str) -> None:
    assert read(envelope(batch_id=batch_id)).batch_id == batch_id


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("2024-05-01T12:00:00", "must match pattern", id="naive"),
        pytest.param("2024-05-01", "must match pattern", id="date only"),
        pytest.param("yesterday", "must match pattern", id="words"),
        pytest.param("2024-05-01T12:00:00Z\n", "must match pattern", id="trailing newline"),
        pytest.param("2024-13-01T12:00:00Z", "month must be in 1..12", id="month 13"),
        pytest.param("2023-02-29T12:00:00Z", "day is out of range", id="29 February 2023"),
        pytest.param("2024-05-01T24:00:01Z", "hour must be in 0..23", id="hour 24"),
        pytest.param("2024-05-01T12:00:00+24:00", "offset must be a timedelta", id="offset of a day"),
    ],
)
def test_ingested_at_must_be_a_real_date_time_with_an_offset(text: str, message: str) -> None:
    error = invalid(envelope(ingested_at=text))
    assert error.path == "$.ingested_at"
    assert message in str(error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01t12:00:00z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01 12:00:00.250+02:00", datetime(2024, 5, 1, 12, 0, 0, 250_000, timezone(timedelta(hours=2)))),
        (
            "2024-02-29T23:59:59.999999-05:30",
            datetime(2024, 2, 29, 23, 59, 59, 999_999, timezone(-timedelta(hours=5.5))),
        ),
    ],
)
def test_rfc_3339_date_times_are_parsed_with_their_offset(text: str, expected: datetime) -> None:
    ingested_at = read(envelope(ingested_at=text)).ingested_at
    assert ingested_at == expected
    assert ingested_at.utcoffset() == expected.utcoffset()


def test_decode_failures_come_before_validation() -> None:
    with pytest.raises(DecodeError):
        EnvelopeReader().read(b'{"batch_id": 1, "batch_id": 2}', None, (), "t", 0, 0, None)


@pytest.mark.parametrize("schema", [PAYLOAD_SCHEMA, "file"])
class TestPayloadSchema:
    @pytest.fixture
    def reader(self, schema: dict[str, Any] | str, tmp_path: Path) -> EnvelopeReader:
        if schema == "file":
            path = tmp_path / "institution.schema.json"
            path.write_text(json.dumps(PAYLOAD_SCHEMA))
            return EnvelopeReader(payload_schema=path)
        assert isinstance(schema, dict)
        return EnvelopeReader(payload_schema=schema)

    def test_a_matching_payload_passes_unchanged(self, reader: EnvelopeReader) -> None:
        payload = {"routing_number": "011000015", "branches": [{"zip": "10001"}]}
        assert read(envelope(payload=payload), reader).payload == payload

    @pytest.mark.parametrize(
        ("payload", "path", "message"),
        [
            ({}, "$.payload.routing_number", "must contain ['routing_number']"),
            ({"routing_number": 11000015}, "$.payload.routing_number", "must be string"),
            ({"routing_number": "12"}, "$.payload.routing_number", "must match pattern"),
            ({"routing_number": "011000015", "branches": [{"zip": "1"}, {"zip": 2}]}, "$.payload.branches[1].zip", ""),
            ({"routing_number": "011000015", "bic": "X"}, "$.payload", "must not contain {'bic'}"),
        ],
    )
    def test_payload_failures_name_the_path(
        self, reader: EnvelopeReader, payload: dict[str, Any], path: str, message: str
    ) -> None:
        error = invalid(envelope(payload=payload), reader)
        assert error.path == path
        assert message in str(error)
        assert str(error).startswith("$.payload")


class TestPayloadModel:
    reader = EnvelopeReader(payload_model=Institution)

    def test_the_payload_becomes_the_model_instance(self) -> None:
        payload = read(envelope(payload={"routing_number": "011000015", "branches": [{"zip": 10001}]}), self.reader)
        assert payload.payload == Institution(routing_number="011000015", branches=[{"zip": 10001}])

    @pytest.mark.parametrize(
        ("payload", "path", "message"),
        [
            ({}, "$.payload.routing_number", "Field required"),
            ({"routing_number": 11000015}, "$.payload.routing_number", "valid string"),
            ({"routing_number": "011000015", "branches": [{"zip": "x"}]}, "$.payload.branches[0].zip", "valid integer"),
            ({"routing_number": "011000015", "bic": "X"}, "$.payload.bic", "Extra inputs"),
        ],
    )
    def test_model_failures_name_the_path(self, payload: dict[str, Any], path: str, message: str) -> None:
        error = invalid(envelope(payload=payload), self.reader)
        assert error.path == path
        assert message in str(error)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param('{"type": "objec"}', "not a valid JSON Schema", id="unknown type"),
        pytest.param('{"properties": {"a": {"minLength": -1}}}', "not a valid JSON Schema", id="negative minLength"),
        pytest.param('{"type": "object",', "cannot read JSON Schema", id="not JSON"),
    ],
)
def test_an_invalid_schema_file_is_a_configuration_error_naming_payload_schema(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "payload.schema.json"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as raised:
        EnvelopeReader(payload_schema=path)
    assert raised.value.setting == "payload_schema"
    assert str(raised.value).startswith(f"payload_schema: {problem}")


def test_a_missing_schema_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"^payload_schema: cannot read JSON Schema .*missing\.json"):
        EnvelopeReader(payload_schema=tmp_path / "missing.json")


def test_an_invalid_schema_mapping_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"^payload_schema: not a valid JSON Schema"):
        EnvelopeReader(payload_schema={"type": 5})


def test_a_schema_and_a_model_together_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"^payload_schema: declare payload_schema or payload_model"):
        EnvelopeReader(payload_schema=PAYLOAD_SCHEMA, payload_model=Institution)


def test_the_envelope_shortcut_never_accepts_what_the_schema_rejects() -> None:
    import itertools  # noqa: PLC0415

    from neotool_common.records.validation import ENVELOPE_SCHEMA, EnvelopeShortcut, _compile, load_schema  # noqa: PLC0415

    schema = load_schema(ENVELOPE_SCHEMA)
    shortcut, full = EnvelopeShortcut(schema), _compile(schema, "$")
    batch_ids = [str(uuid.uuid4()), str(uuid.uuid4()).upper(), str(uuid.uuid1()), str(uuid.uuid4()) + "\n", "", 7, None]
    record_ids = ["r", "", "x" * 512, "x" * 513, 5, None, ["r"]]
    moments = [
        "2024-05-01T12:00:00Z",
        "2024-05-01t12:00:00z",
        "2024-05-01T12:00:00",
        "2024-05-01T12:00:00+02:00\n",
        "2024-05-01 12:00:00.5-07:00",
        1714564800,
        None,
    ]
    payloads = [{}, {"a": 1}, [], "x", None]
    accepted = 0
    for batch_id, record_id, moment, payload in itertools.product(batch_ids, record_ids, moments, payloads):
        envelope = {"batch_id": batch_id, "record_id": record_id, "ingested_at": moment, "payload": payload}
        if shortcut(envelope):
            accepted += 1
            full(envelope)  # raises if the shortcut accepted something the schema does not
    assert accepted == 2 * 2 * 3 * 2  # valid ids x valid record ids x valid moments x valid payloads
