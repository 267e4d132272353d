"""Strict decoding of a record value into one JSON object.

Accepted: UTF-8 (no BOM) JSON text whose top level is an object, within the size and depth limits.
Rejected with :class:`~neotool_common.errors.DecodeError`: a null value (tombstone), invalid UTF-8 or lone
surrogates, invalid or truncated JSON, NaN/Infinity and numbers that overflow a double, duplicate keys
(at any depth), U+0000 in any string, nesting deeper than ``max_depth`` and values above ``max_bytes``.

The hot path is orjson (strict RFC 8259) plus one pass over the decoded object; the stdlib decoder only
runs to pin down duplicate keys when a cheap count says there might be some, and to keep every digit of
integers too large for 64 bits (orjson would turn them into floats).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from neotool_common.errors import DecodeError

__all__ = ["JsonObjectDecoder"]

_KEY_TOKEN = re.compile(rb'"[ \t\r\n]*:')
_QUOTE_THEN_SPACE = re.compile(rb'"[ \t\r\n]')
# orjson turns integers beyond 64 bits into floats, silently losing digits: a value with a run of 19 digits
# takes the exact path. Mapping every digit to "0" first turns a slow regular expression into a byte search.
DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")  # also the fast path's (records/fast.py)
_NINETEEN_DIGITS = b"0" * 19


@dataclass(frozen=True)
class JsonObjectDecoder:
    max_bytes: int = 1_048_576
    max_depth: int = 64

    def decode(self, value: bytes | None) -> dict[str, Any]:
        if value is None:
            raise DecodeError("value is null (a tombstone), not a JSON object")
        if len(value) > self.max_bytes:
            raise DecodeError(f"value is {len(value)} bytes, above the {self.max_bytes}-byte limit")
        try:
            document = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"not strict UTF-8 JSON: {exc}") from None
        if not isinstance(document, dict):
            raise DecodeError(f"top level is a JSON {type(document).__name__}, not an object")
        # Depth first: the searches below recurse, and only a bounded depth keeps them clear of RecursionError.
        keys = _count_keys(document, 1, self.max_depth)
        if b"\\u0000" in value:
            _reject_nul(document)
        if not _no_duplicate_keys(value, keys):
            _raise_on_duplicate_keys(value)
        if _NINETEEN_DIGITS in value.translate(DIGITS_TO_ZERO):
            return _decode_exact_integers(value)
        return document


def _reject_nul(document: dict[str, Any]) -> None:
    nul_path = _path_of_nul(document)
    if nul_path:  # none when the text was an escaped backslash followed by "u0000"
        raise DecodeError("a string contains U+0000", nul_path)


def _no_duplicate_keys(value: bytes, keys: int) -> bool:
    """True when the text holds no more key tokens than the decoded object has keys.

    Every key in the text is a ``"`` followed by a colon, possibly after white space; string values can only
    add to such counts, so equal counts prove there is no duplicate key. The common case (no white space
    after any ``"``) needs a plain byte count; the slow check decides whenever the counts differ.
    """
    if value.count(b'":') == keys and _QUOTE_THEN_SPACE.search(value) is None:
        return True
    return len(_KEY_TOKEN.findall(value)) == keys


def _count_keys(node: dict[str, Any], depth: int, max_depth: int) -> int:
    """Keys at every level below ``node``; raises when nesting goes deeper than ``max_depth``.

    The total is compared with the key tokens in the text to rule out duplicate keys (:func:`_no_duplicate_keys`).
    """
    if depth > max_depth:
        raise DecodeError(f"nested deeper than {max_depth} levels")
    keys = len(node)
    for child in node.values():
        kind = type(child)
        if kind is dict:
            keys += _count_keys(child, depth + 1, max_depth)
        elif kind is list:
            keys += _count_in_list(child, depth + 1, max_depth)
    return keys


def _count_in_list(node: list[Any], depth: int, max_depth: int) -> int:
    if depth > max_depth:
        raise DecodeError(f"nested deeper than {max_depth} levels")
    keys = 0
    for child in node:
        kind = type(child)
        if kind is dict:
            keys += _count_keys(child, depth + 1, max_depth)
        elif kind is list:
            keys += _count_in_list(child, depth + 1, max_depth)
    return keys


def _decode_exact_integers(value: bytes) -> dict[str, Any]:
    """The stdlib decoder keeps every digit of large integers (the text already passed the strict checks)."""
    document: dict[str, Any] = json.loads(value)
    return document


def _raise_on_duplicate_keys(value: bytes) -> None:
    path: list[str] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                path.append(key)
                raise DecodeError(f"duplicate key {key!r}")
            seen.add(key)
        return dict(pairs)

    try:
        json.loads(value, object_pairs_hook=pairs_hook)
    except DecodeError as exc:
        exc.path = f"$..{path[0]}" if path else "$"
        raise
    except (RecursionError, ValueError) as exc:
        raise DecodeError(f"not strict JSON: {exc}") from None


def _path_of_nul(document: Any, path: str = "$") -> str:
    if isinstance(document, str):
        return path if "\x00" in document else ""
    children = (
        document.items() if isinstance(document, dict) else enumerate(document) if isinstance(document, list) else ()
    )
    for key, child in children:
        if isinstance(key, str) and "\x00" in key:
            return path
        found = _path_of_nul(child, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
        if found:
            return found
    return ""
