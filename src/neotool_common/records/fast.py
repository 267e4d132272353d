"""The fast path of :class:`~neotool_common.records.validation.EnvelopeReader`: the common envelope in C.

msgspec decodes the value into a four-member struct (``batch_id``, ``record_id``, ``ingested_at`` as text,
``payload`` an object, no other member), validating UTF-8, RFC 8259 syntax, NaN/Infinity and numbers out of
a double's range as it goes. What msgspec does not check is proved from cheap byte counts; whenever a proof
does not go through, :meth:`FastEnvelope.read` answers None and the strict path
(:class:`~neotool_common.records.decoding.JsonObjectDecoder` and the envelope schema) decides, and words the
reason and the JSON path. The fast path never rejects anything itself, so it can only be faster, never
different: whatever it accepts, the strict path accepts with equal values.

The proofs, for a value with no backslash (so no escape at all):

* *No U+0000, no lone surrogate*: both can only be written as escapes; raw control characters and
  invalid UTF-8 are rejected by msgspec.
* *No duplicate key, at any depth*: with no escape, every ``"`` in the text delimits a string, so the text
  holds ``count('"') / 2`` strings. The decoded payload, re-encoded compactly, holds the same strings
  except those of members a duplicate key replaced, and its strings contain no ``"`` either. The envelope's
  own members add 14 quotes (four keys, three text values). Equal counts prove that no member was dropped.
* *No integer lost digits, none beyond a double*: msgspec keeps integers exact, and the re-encoding (orjson)
  refuses integers beyond 64 bits; the strict path keeps those exact too, so both give the same value. (The
  canonical route below has no orjson: it looks for a run of 309 digits instead.)
* *Depth*: the brackets of the re-encoded payload bound its nesting from above.

Most values are written by an encoder like msgspec's own: compact, members in the envelope's order, numbers
in their shortest form, ``ingested_at`` as ``YYYY-MM-DDTHH:MM:SS[.ffffff]`` with ``Z`` or ``±HH:MM``. Those
take a shorter route (:meth:`FastEnvelope._canonical`): the value is decoded with ``ingested_at`` as an
aware datetime (in C) and encoded again, and when the encoding is the value byte for byte, the value holds
no duplicate key (an encoding has none) and its ``ingested_at`` is in the form above, which the envelope
schema's pattern accepts and from which ``datetime.fromisoformat`` reads the same moment and offset. msgspec
keeps integers exact, as the strict path does, except that the strict path refuses one beyond a double's range:
a value long enough to hold such an integer is searched for a run of 309 digits first. The route
costs one encoding instead of four byte counts, a regular expression and a date parse; any other value
takes the counting route above, as before.

*Depth* on the canonical route: most payloads are flat, and a flat one is decoded as such, an object of
strings, numbers, booleans and nulls (a payload struct is flat too): its type proves the depth, 2, with no
search. Whatever that type refuses is searched for nesting (a flat payload has two ``{`` and no ``[``): a text
without any is refused by the general decoder too, and goes on; a nested one is decoded as any object and its
brackets are counted. The reader starts with whichever of the two decoders the last record on this route
needed, so a stream of nested payloads does not pay for a failed decoding each.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any

import msgspec
import orjson

from neotool_common.records.decoding import DIGITS_TO_ZERO
from neotool_common.records.payload_struct import PayloadStruct

__all__ = ["FastEnvelope"]

# Quotes of the envelope's own members: four keys and the three text values.
_ENVELOPE_QUOTES = 14
# The bytes counted, as integers: ``bytes.count(34)`` and ``92 in value`` skip the substring search machinery.
_QUOTE, _BACKSLASH, _BRACE, _BRACKET = ord('"'), ord("\\"), ord("{"), ord("[")

# record_id, batch_id, ingested_at, payload
Fields = tuple[str, str, datetime, Any]
# Values remembered per payload pattern before the memory starts over.
_REMEMBERED = 4096


# The strict path (orjson) refuses an integer a double cannot hold, the shortest of which has 309 digits; msgspec
# keeps it, and so does its encoding. No shorter value than this envelope can hold one: a shorter value skips the
# search for a run of 309 digits (in the text with every digit mapped to "0").
_HUGE_DIGITS = 309
_SHORTEST_WITH_HUGE = len(
    b'{"batch_id":"","record_id":"","ingested_at":"0001-01-01T00:00:00Z","payload":{"":' + b"1" * _HUGE_DIGITS + b"}}"
)
_HUGE_RUN = b"0" * _HUGE_DIGITS

# The envelope schema's ``ingested_at`` pattern, for which the canonical route's argument is made (see above).
RFC_3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
_AWARE = Annotated[datetime, msgspec.Meta(tz=True)]
# A flat payload's members (msgspec keeps a JSON integer an int and its digits exact, as the strict path does).
_SCALAR = str | int | float | bool | None
# The envelope (level 1) and a flat payload (level 2): the depth the flat decoder proves.
_FLAT_DEPTH = 2


def _envelope(payload: Any, moment: Any = str) -> Any:
    return msgspec.defstruct(
        "Envelope",
        [("batch_id", str), ("record_id", str), ("ingested_at", moment), ("payload", payload)],
        forbid_unknown_fields=True,
    )


def ecma_pattern(pattern: str) -> Callable[[str], re.Match[str] | None]:
    """JSON Schema patterns are ECMA-262: ``$`` ends the text, where Python's would also allow a final newline."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern).search


class FastEnvelope:
    """Reads a record value into ``(record_id, batch_id, ingested_at, payload)``, or None for the strict path."""

    def __init__(
        self,
        schema: Mapping[str, Any],
        max_bytes: int,
        max_depth: int,
        payload: PayloadStruct | None = None,
    ) -> None:
        """``payload``: what decides as the payload schema does (:mod:`.payload_struct`), if any."""
        members = schema["properties"]
        self._batch_id = ecma_pattern(members["batch_id"]["pattern"])
        self._ingested_at = ecma_pattern(members["ingested_at"]["pattern"])
        self._min_id = int(members["record_id"].get("minLength", 1))
        self._max_id = int(members["record_id"].get("maxLength", 1 << 31))
        self._max_bytes = max_bytes
        self._max_depth = max_depth
        payload_type = dict[str, Any] if payload is None else payload.struct
        self._decode = msgspec.json.Decoder(_envelope(payload_type)).decode
        # The canonical route: a payload decoded as flat (a struct's is), else as any object (None: a struct).
        canonical = members["ingested_at"]["pattern"] == RFC_3339 and max_depth >= _FLAT_DEPTH
        flat_type = dict[str, _SCALAR] if payload is None else payload.struct
        self._decode_flat = msgspec.json.Decoder(_envelope(flat_type, _AWARE)).decode if canonical else None
        self._decode_nested = (
            msgspec.json.Decoder(_envelope(payload_type, _AWARE)).decode if canonical and payload is None else None
        )
        self._flat_first = True  # False while the last payload on the canonical route was nested
        self._encode = msgspec.json.Encoder().encode
        self._to_dict = None if payload is None else msgspec.to_builtins
        patterns = () if payload is None else payload.patterns
        # [name, search, the values it matched (None: not remembered), checks when they were last forgotten]
        self._patterns: tuple[list[Any], ...] = tuple([name, search, set[str](), 0] for name, search in patterns)
        self._checks = 0  # payloads whose patterns were checked
        self.validates_payload = payload is not None
        self._last_batch_id: str | None = None  # the last batch id that matched (none yet: "" must be checked too)

    def read(self, value: bytes) -> Fields | None:
        if len(value) > self._max_bytes or _BACKSLASH in value:
            return None
        fields = self._canonical(value) if self._decode_flat is not None else None
        if fields is None:
            fields = self._counted(value)
            if fields is None:
                return None
        record_id, batch_id, _moment, payload = fields
        if batch_id != self._last_batch_id:  # one batch id for thousands of records: checked once
            if self._batch_id(batch_id) is None:
                return None
            self._last_batch_id = batch_id
        if not self._min_id <= len(record_id) <= self._max_id or (self._patterns and not self._matched(payload)):
            return None
        return fields

    def _canonical(self, value: bytes) -> Fields | None:
        """The shorter route, for a value that is its own encoding; None sends it on the counting route."""
        envelope = None
        if self._flat_first:
            try:
                envelope = self._decode_flat(value)  # type: ignore[misc]
            except (msgspec.DecodeError, RecursionError):  # ValidationError too: a nested payload, a naive time
                envelope = None
        if envelope is None:
            envelope = self._nested(value, tried_flat=self._flat_first)
            if envelope is None:
                return None
        if self._encode(envelope) != value or (
            len(value) >= _SHORTEST_WITH_HUGE and _HUGE_RUN in value.translate(DIGITS_TO_ZERO)
        ):
            return None
        payload = envelope.payload if self._to_dict is None else self._to_dict(envelope.payload)
        return envelope.record_id, envelope.batch_id, envelope.ingested_at, payload

    def _nested(self, value: bytes, tried_flat: bool) -> Any:
        """The envelope with its payload as any object, its depth bounded by the brackets; None for the strict path.

        Whether this payload was nested decides which decoder the next value on this route meets first.
        """
        if self._decode_nested is None:
            return None  # a payload struct is flat: what its decoder refused, the strict path words
        nested = _BRACKET in value or value.find(_BRACE, value.find(_BRACE, 1) + 1) != -1
        if tried_flat and not nested:
            return None  # no nesting in the text: what the flat decoder refused (a poison record), this one would
        try:
            envelope = self._decode_nested(value)
        except (msgspec.DecodeError, RecursionError):
            return None
        self._flat_first = not nested
        if nested and value.count(_BRACE) + value.count(_BRACKET) > self._max_depth:
            return None  # perhaps too deep (brackets inside strings count too): the strict path decides
        return envelope

    def _counted(self, value: bytes) -> Fields | None:
        """The counting route: any layout, ``ingested_at`` held to the schema's pattern here."""
        try:
            envelope = self._decode(value)
            payload = envelope.payload if self._to_dict is None else self._to_dict(envelope.payload)
            text = orjson.dumps(payload)
        except (msgspec.DecodeError, orjson.JSONEncodeError, RecursionError):
            return None
        if (
            value.count(_QUOTE) != _ENVELOPE_QUOTES + text.count(_QUOTE)
            or text.count(_BRACE) + text.count(_BRACKET) >= self._max_depth
        ):
            return None
        moment = self._moment(envelope.ingested_at)
        return None if moment is None else (envelope.record_id, envelope.batch_id, moment, payload)

    def _matched(self, payload: dict[str, Any]) -> bool:
        """The payload's text members match their patterns (values seen to match before are not searched again)."""
        self._checks += 1
        for member in self._patterns:
            name, search, matched, _ = member
            text = payload.get(name)
            if text is None or (matched is not None and text in matched):
                continue  # an absent optional member, or a value seen to match
            if search(text) is None:
                return False
            if matched is not None:
                matched.add(text)
                if len(matched) >= _REMEMBERED:
                    self._forget(member)
        return True

    def _forget(self, member: list[Any]) -> None:
        """A member's memory is full: start it again, or stop remembering when most of its values were new.

        Countries, states and cities repeat, and a set lookup costs a fraction of a search; an identifier never
        does, and remembering it only adds a hash and an insertion to its search. Under half the checks since the
        memory was last started found their value in it: the member's values are not remembered any more.
        """
        checks = self._checks - member[3]
        member[2] = set[str]() if checks >= 2 * _REMEMBERED else None
        member[3] = self._checks

    def _moment(self, text: str) -> datetime | None:
        if self._ingested_at(text) is None:
            return None
        try:
            moment = datetime.fromisoformat(text.upper())
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else None
