"""The compiled build of the fast path decides exactly as ``fast.py`` does, and is never run when out of date.

``make install`` and ``make test`` build it (scripts/build_native.py); ``test_fast_envelope.py`` holds the
interpreted build to the strict path, and this module holds the compiled build to the interpreted one, value by
value and in the state each keeps between values.
"""

from __future__ import annotations

import importlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from bench.records import envelope_values

from neotool_common.config.settings import RunnerSettings
from neotool_common.errors import ConfigurationError
from neotool_common.records import fast, native
from neotool_common.records.payload_struct import payload_struct
from neotool_common.records.validation import ENVELOPE_SCHEMA, EnvelopeReader, load_schema
from soak.corpus import bad_records, tricky_good_records
from tests.unit.test_fast_envelope import BATCH, canonical, same, value

ENVELOPE = load_schema(ENVELOPE_SCHEMA)
PAYLOAD_SCHEMA = Path(__file__).parents[2] / "examples/institution-enhancement/src/institution_enhancement/schemas"
BASE_ENV = {"KAFKA_BROKERS": "127.0.0.1:9", "KAFKA_TOPICS": "t", "KAFKA_GROUP_ID": "g"}


def compiled_type() -> type[fast.FastEnvelope]:
    compiled, why = native.compiled_status()
    assert compiled is not None, f"{why}: make install (or make native) builds it"
    return compiled


def _scalar(rng: random.Random) -> Any:
    return rng.choice(
        [
            rng.randint(-(1 << 70), 1 << 70),
            rng.randint(-9, 9),
            rng.random() * 10 ** rng.randint(-300, 300),
            rng.choice(["", "a", "é", "x" * 40, "\u2028"]),
            True,
            False,
            None,
        ]
    )


def _payload(rng: random.Random, depth: int) -> Any:
    if depth == 0 or rng.random() < 0.5:
        return {f"k{i}": _scalar(rng) for i in range(rng.randint(0, 6))}
    if rng.random() < 0.3:
        return [_payload(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    return {f"n{i}": _payload(rng, depth - 1) for i in range(rng.randint(1, 3))}


def _values(rng: random.Random, count: int) -> list[bytes]:
    """Flat, nested and broken payloads on both routes, and the soak suite's bad and tricky good records."""
    values = [planned.value for planned in bad_records() + tricky_good_records() if planned.value is not None]
    for _ in range(count):
        payload = json.dumps(_payload(rng, rng.randint(0, 5)), ensure_ascii=rng.random() < 0.2).encode()
        wrap = canonical if rng.random() < 0.7 else value
        raw = wrap(payload)
        roll = rng.random()
        if roll < 0.05:
            raw = raw.replace(b'"k0"', b'"k1"', 1)  # perhaps a duplicate key
        elif roll < 0.08:
            raw = raw[: rng.randint(1, len(raw) - 1)]  # cut short
        elif roll < 0.1:
            raw = raw.replace(BATCH.encode(), b"not-a-uuid")
        values.append(raw)
    return values


def _institutions(rng: random.Random, count: int) -> list[bytes]:
    """The example's payloads (valid by its schema), each spoilt in one way or another a third of the time."""
    values = []
    for key_and_value in envelope_values(count, poison=True, seed=rng.randrange(1 << 30)):
        raw = key_and_value[1]
        roll = rng.random()
        if roll < 0.05:
            raw = raw.replace(b'"country":"US"', b'"country":"us"')  # breaks a pattern
        elif roll < 0.1:
            raw = raw.replace(b'"total_assets_usd":', b'"total_assets_usd":-')  # below its minimum
        elif roll < 0.15:
            raw = raw.replace(b'"state":', b'"swift_bic":"DEUTDEFF500","state":')  # an optional member
        elif roll < 0.2:
            raw = raw.replace(b'"website":"https://', b'"website":"https:// ')
        elif roll < 0.25:
            raw = raw.replace(b'"name":', b'"nickname":"x","name":')  # not in the schema
        elif roll < 0.3:
            raw = raw.replace(b'","country"', b'0","country"')  # a routing number of ten digits
        values.append(raw)
    return values


def _state(reader: fast.FastEnvelope) -> tuple[Any, ...]:
    """What a reader keeps between values: the decoder it tries first, the last batch id, the pattern memory."""
    patterns = tuple((name, None if seen is None else frozenset(seen), at) for name, _, seen, at in reader._patterns)
    return reader._flat_first, reader._last_batch_id, reader._checks, patterns


@pytest.mark.parametrize(
    ("max_depth", "with_struct", "accepted"),
    [(64, False, 0.3), (3, False, 0.1), (1, False, 0.0), (64, True, 0.5)],
    ids=["64", "3", "1", "struct"],
)
def test_the_compiled_build_reads_every_value_as_the_interpreted_one(
    max_depth: int, with_struct: bool, accepted: float
) -> None:
    schema = load_schema(PAYLOAD_SCHEMA / "institution.v1.json") if with_struct else None
    struct = payload_struct(schema) if schema is not None else None
    built = compiled_type()(ENVELOPE, 1_048_576, max_depth, struct)
    interpreted = fast.FastEnvelope(ENVELOPE, 1_048_576, max_depth, struct)
    rng = random.Random(max_depth * 2 + with_struct)
    values = _institutions(rng, 12_000) if with_struct else _values(rng, 3000)  # enough to fill a pattern memory
    read = 0
    for raw in values:
        answers = built.read(raw), interpreted.read(raw)
        assert same(*answers), raw
        assert _state(built) == _state(interpreted), raw
        read += answers[0] is not None
    assert read >= accepted * len(values)  # both routes were taken, not only the way to the strict path
    assert not accepted or read < len(values)


def test_the_compiled_build_is_current_and_the_runner_reads_with_it() -> None:
    reader = EnvelopeReader()
    assert reader.fast_path == "compiled"
    assert type(reader._fast.__self__) is compiled_type()
    assert compiled_type() is not fast.FastEnvelope


@pytest.mark.parametrize("edited", native.SOURCES)
def test_a_compiled_build_from_other_sources_is_not_used(monkeypatch: pytest.MonkeyPatch, edited: str) -> None:
    original = Path.read_bytes
    source = Path(fast.__file__).with_name(edited)

    def read_bytes(path: Path) -> bytes:
        text = original(path)
        return text + b"# edited after the build\n" if path == source else text

    native.compiled_status.cache_clear()
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    try:
        reader = EnvelopeReader()
        assert reader.fast_path.startswith("interpreted: the compiled build was made from other sources than")
        assert type(reader._fast.__self__) is fast.FastEnvelope
        with pytest.raises(ConfigurationError, match="RECORD_DECODER: compiled, but the compiled build was made"):
            EnvelopeReader(fast_path="compiled")
    finally:
        monkeypatch.undo()
        native.compiled_status.cache_clear()
    assert EnvelopeReader().fast_path == "compiled"


def test_record_decoder_chooses_the_build_and_refuses_an_unknown_choice() -> None:
    assert RunnerSettings.from_env(BASE_ENV).record_decoder == "auto"
    settings = RunnerSettings.from_env({**BASE_ENV, "RECORD_DECODER": "Interpreted"})
    assert settings.record_decoder == "interpreted"
    assert EnvelopeReader(fast_path=settings.record_decoder).fast_path == "interpreted"
    assert type(EnvelopeReader(fast_path="interpreted")._fast.__self__) is fast.FastEnvelope
    with pytest.raises(ConfigurationError, match="RECORD_DECODER: must be one of auto, compiled, interpreted"):
        RunnerSettings.from_env({**BASE_ENV, "RECORD_DECODER": "fast"})


def test_a_compiled_build_that_does_not_load_is_not_used_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def refuse(name: str, package: str | None = None) -> Any:
        if name == native.COMPILED_MODULE:
            raise ImportError("undefined symbol: PyFoo_Bar")  # a build for another interpreter, say
        return real(name, package)

    native.compiled_status.cache_clear()
    monkeypatch.setattr(importlib, "import_module", refuse)
    try:
        assert EnvelopeReader().fast_path == (
            "interpreted: the compiled build does not load: ImportError: undefined symbol: PyFoo_Bar"
        )
    finally:
        monkeypatch.undo()
        native.compiled_status.cache_clear()


def test_a_bytearray_is_read_as_bytes_would_be() -> None:
    """The compiled build takes bytes only; what else it is given, the strict path reads (to the same fields)."""
    raw = bytearray(value(b'{"a":1}'))
    message = EnvelopeReader().read(raw, None, (), "t", 0, 7, None)  # type: ignore[arg-type]
    expected = EnvelopeReader(fast_path="interpreted").read(bytes(raw), None, (), "t", 0, 7, None)
    assert (message.record_id, message.payload, message.ingested_at) == (
        expected.record_id,
        expected.payload,
        expected.ingested_at,
    )
