"""JsonObjectDecoder: every class of bad bytes is a DecodeError (dlq.reason=decode) with a JSON path."""

from __future__ import annotations

import codecs
import json

import pytest

from neotool_common.errors import DecodeError
from neotool_common.records.decoding import JsonObjectDecoder

DECODER = JsonObjectDecoder()


def decode_error(value: bytes | None, decoder: JsonObjectDecoder = DECODER) -> DecodeError:
    with pytest.raises(DecodeError) as raised:
        decoder.decode(value)
    assert raised.value.reason == "decode"
    return raised.value


def nested(depth: int, innermost: bytes = b"1") -> bytes:
    return b'{"a":' * depth + innermost + b"}" * depth


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(b'{"name": "caf\xe9"}', "UTF-8", id="latin-1 byte"),
        pytest.param(b'{"name": "\xed\xa0\x80"}', "UTF-8", id="encoded lone surrogate"),
        pytest.param('{"name": "x"}'.encode("utf-16"), "UTF-8", id="utf-16 with BOM"),
        pytest.param('{"name": "x"}'.encode("utf-16-le"), "not strict UTF-8 JSON", id="utf-16-le"),
        pytest.param(codecs.BOM_UTF8 + b'{"name": "x"}', "byte order mark", id="utf-8 BOM"),
        pytest.param(b'{"name": ["x", "y"', "end of data", id="truncated"),
        pytest.param(b"", "empty", id="empty value"),
        pytest.param(b'{"n": NaN}', "not strict UTF-8 JSON", id="NaN"),
        pytest.param(b'{"n": -Infinity}', "not strict UTF-8 JSON", id="Infinity"),
        pytest.param(b'{"n": 1e400}', "infinity", id="1e400"),
        pytest.param(b'{"n": ' + b"7" * 4301 + b"}", "infinity", id="4301-digit integer"),
        pytest.param(b'{"name": "\\ud800"}', "surrogate", id="escaped lone surrogate"),
        pytest.param(b'{"name": "\\udc00 tail"}', "surrogate", id="escaped lone low surrogate"),
        pytest.param(nested(100_000), "depth", id="100k levels"),
        pytest.param(b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "depth", id="100k nested arrays"),
    ],
)
def test_bytes_that_are_not_strict_json_are_decode_errors_at_the_root(value: bytes, message: str) -> None:
    error = decode_error(value)
    assert message in str(error)
    assert error.path == "$"


def test_a_null_value_is_a_tombstone_not_a_record() -> None:
    error = decode_error(None)
    assert "tombstone" in str(error)
    assert error.path == "$"


@pytest.mark.parametrize(
    ("value", "kind"), [(b"[1, 2]", "list"), (b'"text"', "str"), (b"42", "int"), (b"null", "NoneType")]
)
def test_the_top_level_must_be_an_object(value: bytes, kind: str) -> None:
    error = decode_error(value)
    assert "not an object" in str(error)
    assert kind in str(error)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        pytest.param(b'{"id": 1, "name": "a", "id": 2}', "$..id", id="top level"),
        pytest.param(b'{"payload": {"bic": "X", "bic": "Y"}}', "$..bic", id="nested object"),
        pytest.param(b'{"payload": {"items": [{"k": 1}, {"k": 2, "k": 3}]}}', "$..k", id="object in an array"),
        pytest.param(b'{"id": 1, "id" \n : 1}', "$..id", id="whitespace before the colon"),
    ],
)
def test_duplicate_keys_are_rejected_at_any_depth(value: bytes, path: str) -> None:
    error = decode_error(value)
    assert "duplicate key" in str(error)
    assert error.path == path


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b'{"note": "she said \\":\\" twice", "n": 1}', id='value containing \\":'),
        pytest.param(b'{"a": "\\":", "b": {"c": "\\" :"}}', id='several \\": in values'),
        pytest.param(b'{"a": {"x": 1}, "b": {"x": 1}}', id="same key in sibling objects"),
    ],
)
def test_quotes_and_colons_inside_values_are_not_duplicate_keys(value: bytes) -> None:
    assert DECODER.decode(value) == json.loads(value)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        pytest.param(b'{"name": "a\\u0000b"}', "$.name", id="top-level string"),
        pytest.param(b'{"payload": {"rows": ["ok", "\\u0000"]}}', "$.payload.rows[1]", id="string in an array"),
        pytest.param(b'{"payload": {"k\\u0000": 1}}', "$.payload", id="in a key"),
    ],
)
def test_nul_characters_are_rejected_with_their_path(value: bytes, path: str) -> None:
    error = decode_error(value)
    assert "U+0000" in str(error)
    assert error.path == path


def test_an_escaped_backslash_before_u0000_is_not_a_nul_character() -> None:
    assert DECODER.decode(b'{"path": "C:\\\\u0000"}') == {"path": "C:\\u0000"}


def test_nesting_is_limited_and_deep_records_never_exhaust_the_stack() -> None:
    assert DECODER.decode(nested(DECODER.max_depth)) is not None
    error = decode_error(nested(DECODER.max_depth + 1))
    assert f"deeper than {DECODER.max_depth}" in str(error)
    # Deep enough to overflow a recursive search, shallow enough to get past the JSON parser's own limit.
    decode_error(nested(1000, b'"\\u0000"'))


def test_values_above_the_size_limit_are_rejected_before_parsing() -> None:
    small = JsonObjectDecoder(max_bytes=64)
    value = json.dumps({"name": "x" * 64}).encode()
    error = decode_error(value, small)
    assert f"{len(value)} bytes" in str(error)
    assert "64-byte limit" in str(error)
    assert small.decode(b'{"name": "x"}') == {"name": "x"}


def test_the_default_size_limit_is_one_mebibyte() -> None:
    padding = JsonObjectDecoder().max_bytes - len(b'{"p": ""}')
    assert DECODER.decode(b'{"p": "' + b"x" * padding + b'"}')["p"] == "x" * padding
    decode_error(b'{"p": "' + b"x" * (padding + 1) + b'"}')


def test_valid_json_objects_decode_to_their_values() -> None:
    value = '{"name": "Zürich 🏦", "n": 12345678901234, "f": -0.5, "ok": true, "none": null, "l": [{}]}'
    assert DECODER.decode(value.encode()) == json.loads(value)


def test_integers_beyond_64_bits_keep_every_digit() -> None:
    big = 2**64 + 1
    document = JsonObjectDecoder().decode(b'{"account": %d, "small": 7, "ratio": 0.5}' % big)
    assert document == {"account": big, "small": 7, "ratio": 0.5}
    assert isinstance(document["account"], int)


def test_long_digit_runs_inside_strings_decode_unchanged() -> None:
    text = b'{"iban": "DE89370400440532013000", "n": 1}'
    assert JsonObjectDecoder().decode(text) == {"iban": "DE89370400440532013000", "n": 1}
