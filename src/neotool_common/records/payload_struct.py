"""A payload JSON Schema as a msgspec struct, for the reader's fast path, when it is simple enough.

Simple enough: a closed object (``additionalProperties: false``) whose members are strings (``pattern``,
``minLength``, ``maxLength``), integers, numbers (integer ``minimum``, ``maximum`` and exclusive bounds),
booleans or nulls, some of them ``required``, and nothing else but annotations. For such a schema msgspec
accepts only what the compiled schema (fastjsonschema) accepts, with the same values: the patterns are the
schema's with ECMA-262's ``$`` (as fastjsonschema compiles them), lengths count characters in both, an
``integer`` member takes JSON integers only (fastjsonschema would also take ``1.0``: such a record takes the
strict path), a ``number`` member keeps integers as integers. Any other schema gives None: its payload is
decoded as an object and checked by the compiled schema, on the fast path too.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

__all__ = ["PayloadStruct", "payload_struct"]

_ANNOTATIONS = frozenset({"title", "description", "$comment", "examples", "$schema", "$id"})
_TOP = _ANNOTATIONS | {"type", "required", "properties", "additionalProperties"}
_BOUNDS = {"minimum": "ge", "maximum": "le", "exclusiveMinimum": "gt", "exclusiveMaximum": "lt"}
_STRING = _ANNOTATIONS | {"type", "pattern", "minLength", "maxLength"}
_NUMBER = _ANNOTATIONS | {"type", *_BOUNDS}
_PLAIN: dict[str, Any] = {"boolean": bool, "null": type(None)}  # not None itself: that means "not simple enough"
# fastjsonschema turns every "$" not preceded by a backslash into "\Z" (ECMA-262's end of input); so does this.
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")


@dataclass(frozen=True)
class PayloadStruct:
    """The struct (types, lengths, bounds, required and unknown members, in C) and the members' patterns.

    The patterns are checked after decoding, by :class:`~neotool_common.records.fast.FastEnvelope`, which
    remembers the values each one matched: payloads repeat their countries, states and cities, and a set
    lookup costs a fraction of a regular expression (a member whose values do not repeat, an identifier, is
    searched each time).
    """

    struct: type[msgspec.Struct]
    patterns: tuple[tuple[str, Callable[[str], re.Match[str] | None]], ...]


def payload_struct(schema: Mapping[str, Any]) -> PayloadStruct | None:
    """What decides exactly as ``schema`` does, or None when ``schema`` is not simple enough."""
    properties = schema.get("properties")
    if (
        set(schema) - _TOP
        or schema.get("type") != "object"
        or schema.get("additionalProperties") is not False
        or not isinstance(properties, Mapping)
    ):
        return None
    required = schema.get("required", [])
    if not isinstance(required, list) or not set(required) <= set(properties):
        return None
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    patterns = []
    for name, member in properties.items():
        kind = _member_type(member) if _plain_name(name) else None
        if kind is None:
            return None
        fields.append((name, kind) if name in required else (name, kind, msgspec.UNSET))
        if member.get("pattern") is not None:
            patterns.append((name, re.compile(_UNESCAPED_DOLLAR.sub(r"\\Z", member["pattern"])).search))
    struct = msgspec.defstruct("Payload", fields, forbid_unknown_fields=True, kw_only=True)
    return PayloadStruct(struct, tuple(patterns))


def _plain_name(name: object) -> bool:
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")


def _member_type(member: object) -> Any:
    if not isinstance(member, Mapping):
        return None
    kind = member.get("type")
    if kind == "string" and not set(member) - _STRING:
        return _string(member)
    if kind in ("integer", "number") and not set(member) - _NUMBER:
        return _number(member, kind)
    if isinstance(kind, str) and kind in _PLAIN and not set(member) - _ANNOTATIONS - {"type"}:
        return _PLAIN[kind]
    return None


def _number(member: Mapping[str, Any], kind: str) -> Any:
    bounds = {_BOUNDS[key]: member[key] for key in _BOUNDS if key in member}
    if not all(type(bound) is int for bound in bounds.values()):
        return None  # msgspec takes only integer bounds on integers: the compiled schema decides
    if not bounds:
        return int if kind == "integer" else int | float
    meta = msgspec.Meta(**bounds)
    # msgspec takes bounds on each numeric type, not on a union of them.
    return Annotated[int, meta] if kind == "integer" else Annotated[int, meta] | Annotated[float, meta]


def _string(member: Mapping[str, Any]) -> Any:
    pattern = member.get("pattern")
    lengths = {"min_length": member.get("minLength"), "max_length": member.get("maxLength")}
    meta: dict[str, Any] = {k: v for k, v in lengths.items() if v is not None}
    if not all(type(v) is int and v >= 0 for v in meta.values()):
        return None
    if pattern is not None and not isinstance(pattern, str):
        return None  # a pattern is checked after decoding (PayloadStruct.patterns), as fastjsonschema compiles it
    return Annotated[str, msgspec.Meta(**meta)] if meta else str
