"""From record bytes to a validated :class:`~neotool_common.records.message.Message`.

The envelope schema (``schemas/envelope.v1.json``) and a consumer's payload schema are compiled once into
Python code (fastjsonschema) when the runner starts; the schema files themselves are checked against the
JSON Schema meta-schema (jsonschema) so a broken schema is a configuration error, not a poison record.
A payload can instead be declared as a pydantic model; ``Message.payload`` is then the model instance.

:meth:`EnvelopeReader.read` tries the fast path first (:mod:`.fast`: msgspec, and a simple payload schema as a
struct, :mod:`.payload_struct`); whatever it cannot prove valid takes the strict path here, which decides with
the exact reason and JSON path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema
import pydantic

from neotool_common.errors import ConfigurationError, SchemaValidationError
from neotool_common.records.decoding import JsonObjectDecoder
from neotool_common.records.fast import Fields, ecma_pattern
from neotool_common.records.message import Message
from neotool_common.records.native import fast_envelope_type
from neotool_common.records.payload_struct import payload_struct

__all__ = ["ENVELOPE_SCHEMA", "EnvelopeReader", "EnvelopeShortcut", "SchemaSource", "load_schema"]

SchemaSource = Mapping[str, Any] | Path | Traversable

Validator = Callable[[Any], Any]

ENVELOPE_SCHEMA = resources.files("neotool_common").joinpath("schemas", "envelope.v1.json")


def load_schema(source: SchemaSource, setting: str = "payload_schema") -> dict[str, Any]:
    """A JSON Schema from a mapping or a file, checked against its meta-schema."""
    if isinstance(source, Mapping):
        schema = dict(source)
    else:
        try:
            schema = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(setting, f"cannot read JSON Schema {source}: {exc}") from None
    try:
        jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConfigurationError(setting, f"not a valid JSON Schema: {exc.message}") from None
    return schema


def _path_part(part: object) -> str:
    return f"[{part}]" if isinstance(part, int) else f".{part}"


def _compile(schema: dict[str, Any], prefix: str, setting: str = "payload_schema") -> Validator:
    try:
        check = fastjsonschema.compile(schema)
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        # Valid by the meta-schema, yet self-contradictory (a required member that additionalProperties forbids).
        raise ConfigurationError(setting, f"cannot be compiled: {exc}") from None

    def validate(document: Any) -> Any:
        try:
            return check(document)
        except fastjsonschema.JsonSchemaValueException as exc:
            # exc.name is "data" followed by ".member" and "[index]" parts: the JSON path below the document.
            where = prefix + (exc.name or "data").removeprefix("data")
            message = exc.message.replace(exc.name, where, 1) if exc.name else exc.message
            raise SchemaValidationError(message, _failing_path(exc, where)) from None

    return validate


def _failing_path(exc: fastjsonschema.JsonSchemaValueException, where: str) -> str:
    """Where the failure is; a missing required member is pointed at itself, as pydantic models do."""
    if exc.rule == "required" and isinstance(exc.value, dict):
        missing = next((name for name in exc.rule_definition if name not in exc.value), None)
        if missing is not None:
            return f"{where}.{missing}"
    return where


class EnvelopeShortcut:
    """A sound shortcut for the envelope schema: when it says yes, the schema would too.

    It reads its patterns and limits from the envelope schema itself and checks the four members with plain
    type tests and two regular expressions, a quarter of the compiled validator's cost. When it says no, the
    full validator runs and decides (and words the error), so the shortcut can never reject a valid record.
    """

    def __init__(self, schema: Mapping[str, Any]) -> None:
        members = schema["properties"]
        self._batch_id = ecma_pattern(members["batch_id"]["pattern"])
        self._ingested_at = ecma_pattern(members["ingested_at"]["pattern"])
        self._min_id = int(members["record_id"].get("minLength", 1))
        self._max_id = int(members["record_id"].get("maxLength", 1 << 31))

    def __call__(self, envelope: dict[str, Any]) -> bool:
        batch_id = envelope.get("batch_id")
        record_id = envelope.get("record_id")
        ingested_at = envelope.get("ingested_at")
        return (
            type(batch_id) is str
            and self._batch_id(batch_id) is not None
            and type(record_id) is str
            and self._min_id <= len(record_id) <= self._max_id
            and type(ingested_at) is str
            and self._ingested_at(ingested_at) is not None
            and type(envelope.get("payload")) is dict
        )


class EnvelopeReader:
    """Decodes, validates and wraps one record value. Raises ``DecodeError`` or ``SchemaValidationError``."""

    def __init__(
        self,
        payload_schema: SchemaSource | None = None,
        payload_model: type[pydantic.BaseModel] | None = None,
        decoder: JsonObjectDecoder | None = None,
        fast_path: str = "auto",
    ) -> None:
        """``fast_path``: which build of the fast path runs (:mod:`.native`); :attr:`fast_path` says which did."""
        if payload_schema is not None and payload_model is not None:
            raise ConfigurationError("payload_schema", "declare payload_schema or payload_model, not both")
        decoder = decoder or JsonObjectDecoder()
        self._decode = decoder.decode
        envelope_schema = load_schema(ENVELOPE_SCHEMA, "envelope schema")
        self._envelope_is_valid = EnvelopeShortcut(envelope_schema)
        self._validate_envelope = _compile(envelope_schema, "$", "envelope schema")
        payload = load_schema(payload_schema) if payload_schema is not None else None
        self._validate_payload: Validator | None = (
            _compile(payload, "$.payload", "payload_schema") if payload is not None else None
        )
        self._payload_model = payload_model
        struct = payload_struct(payload) if payload is not None else None
        envelope_type, self.fast_path = fast_envelope_type(fast_path)
        fast = envelope_type(envelope_schema, decoder.max_bytes, decoder.max_depth, struct)
        self._fast = fast.read
        # With a struct, the fast path has checked the payload schema too; the compiled one is for the strict path.
        self._validate_fast_payload = None if fast.validates_payload else self._validate_payload

    def read(
        self,
        value: bytes | None,
        key: bytes | None,
        headers: tuple[tuple[str, bytes | None], ...],
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int | None,
    ) -> Message:
        try:  # free unless raised: a value that is not bytes (None, say) is the strict path's to word
            fields = self._fast(value)  # type: ignore[arg-type]
        except TypeError:  # the compiled build takes bytes only (fast.py's len() raises it for None)
            fields = None
        validate = self._validate_fast_payload
        if fields is None:
            fields = self._strict(value)
            validate = self._validate_payload
        record_id, batch_id, ingested_at, payload = fields
        try:
            if validate is not None:
                validate(payload)
            elif self._payload_model is not None:
                payload = _validate_model(self._payload_model, payload)
        except SchemaValidationError as exc:
            exc.record_id, exc.batch_id = record_id, batch_id
            raise
        assert value is not None  # decode() rejects a null value
        return Message(
            record_id, batch_id, ingested_at, payload, key, headers, topic, partition, offset, timestamp_ms, value
        )

    def _strict(self, value: bytes | None) -> Fields:
        """Every rule, in order, with the reason and path of the first one broken."""
        envelope = self._decode(value)
        try:  # free unless raised: the ids are read from the object only for a record that failed
            if not self._envelope_is_valid(envelope):
                self._validate_envelope(envelope)
            ingested_at = _parse_ingested_at(envelope["ingested_at"])
        except SchemaValidationError as exc:
            exc.record_id, exc.batch_id = _text(envelope.get("record_id")), _text(envelope.get("batch_id"))
            raise
        return envelope["record_id"], envelope["batch_id"], ingested_at, envelope["payload"]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _parse_ingested_at(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.upper())  # the schema allows RFC 3339's lower-case t and z
    except ValueError as exc:
        raise SchemaValidationError(f"$.ingested_at is not an ISO 8601 date-time: {exc}", "$.ingested_at") from None
    if moment.tzinfo is None:  # the envelope schema requires an offset; this guards looser custom schemas
        raise SchemaValidationError("$.ingested_at has no UTC offset", "$.ingested_at")
    return moment


def _validate_model(model: type[pydantic.BaseModel], payload: Any) -> pydantic.BaseModel:
    try:  # model_validate() with its defaults, less its Python frame (a microsecond a record)
        return model.__pydantic_validator__.validate_python(payload)  # type: ignore[no-any-return]
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        path = "$.payload" + "".join(_path_part(p) for p in error["loc"])
        raise SchemaValidationError(f"{path}: {error['msg']}", path) from None
