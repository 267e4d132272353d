"""Building the standard envelope every published record is wrapped in (platform standard §4.2).

The shape (``schemas/envelope.v1.json``)::

    {"batch_id": "<UUIDv7>", "record_id": "<non-empty>", "ingested_at": "<ISO 8601 UTC>", "payload": {...}}

:func:`new_batch_id` makes RFC 9562 version-7 UUIDs: time-ordered, and strictly increasing within one
process even when many are made in the same millisecond or the wall clock steps back.
:func:`build_envelope` checks its arguments and returns the envelope as a plain ``dict``;
:func:`encode_envelope` turns it into the UTF-8 JSON bytes that go on the wire.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import orjson

__all__ = [
    "ACCEPTED_BATCH_ID_VERSIONS",
    "RECORD_ID_MAX_LENGTH",
    "UuidV7Generator",
    "build_envelope",
    "encode_envelope",
    "format_utc",
    "new_batch_id",
]

ACCEPTED_BATCH_ID_VERSIONS: Final = frozenset({4, 7})
RECORD_ID_MAX_LENGTH: Final = 512  # the envelope schema's maxLength
_COUNTER_MAX: Final = 0xFFF  # rand_a holds a 12-bit counter (RFC 9562 §6.2, method 1)
_COUNTER_SEED_MASK: Final = 0x7FF  # a fresh millisecond starts in the lower half: room for 2048 more ids
_TIMESTAMP_MASK: Final = (1 << 48) - 1
_RAND_B_MASK: Final = (1 << 62) - 1


class UuidV7Generator:
    """Makes version-7 UUIDs that never go backwards within this generator.

    The 48-bit millisecond timestamp is followed by a 12-bit counter seeded at random each new
    millisecond; when the counter is spent, or the clock steps back, the timestamp is carried forward
    instead. The last 62 bits are random. Thread-safe. ``time_ns`` and ``random_bytes`` are injectable.
    """

    def __init__(
        self, time_ns: Callable[[], int] = time.time_ns, random_bytes: Callable[[int], bytes] = os.urandom
    ) -> None:
        self._time_ns = time_ns
        self._random_bytes = random_bytes
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def __call__(self) -> uuid.UUID:
        millis, counter = self._next_tick()
        rand_b = int.from_bytes(self._random_bytes(8), "big") & _RAND_B_MASK
        value = (millis & _TIMESTAMP_MASK) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
        return uuid.UUID(int=value)

    def _next_tick(self) -> tuple[int, int]:
        with self._lock:
            now_ms = self._time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms, self._counter = now_ms, self._fresh_counter()
            elif self._counter < _COUNTER_MAX:
                self._counter += 1
            else:
                self._last_ms, self._counter = self._last_ms + 1, self._fresh_counter()
            return self._last_ms, self._counter

    def _fresh_counter(self) -> int:
        return int.from_bytes(self._random_bytes(2), "big") & _COUNTER_SEED_MASK


_generate = UuidV7Generator()


def new_batch_id() -> str:
    """A new UUIDv7 string (lower-case, hyphenated); later calls in this process sort after earlier ones."""
    return str(_generate())


def build_envelope(
    payload: Mapping[str, Any],
    *,
    record_id: str,
    batch_id: str | None = None,
    ingested_at: datetime | None = None,
) -> dict[str, Any]:
    """The envelope of one record.

    ``batch_id`` defaults to a new UUIDv7 and must otherwise be a UUID of version 4 or 7 (returned in
    canonical form); ``ingested_at`` defaults to now and must be timezone-aware (written in UTC).
    Raises ``ValueError`` for an empty or over-long ``record_id``, a bad ``batch_id`` or a naive ``ingested_at``,
    ``TypeError`` when ``payload`` is not a mapping. The payload is copied (shallowly), not validated.
    """
    if not isinstance(payload, Mapping):
        raise TypeError(f"payload must be a mapping, not {type(payload).__name__}")
    if not isinstance(record_id, str) or not record_id.strip():
        raise ValueError("record_id must be a non-empty string")
    if len(record_id) > RECORD_ID_MAX_LENGTH:
        raise ValueError(f"record_id is {len(record_id)} characters, above the limit of {RECORD_ID_MAX_LENGTH}")
    return {
        "batch_id": new_batch_id() if batch_id is None else _canonical_batch_id(batch_id),
        "record_id": record_id,
        "ingested_at": format_utc(datetime.now(UTC) if ingested_at is None else ingested_at),
        "payload": dict(payload),
    }


def encode_envelope(envelope: Mapping[str, Any]) -> bytes:
    """UTF-8 JSON bytes; raises ``TypeError`` for values JSON cannot hold (e.g. non-string keys)."""
    return orjson.dumps(envelope)


def format_utc(moment: datetime) -> str:
    """``2024-05-01T12:00:00.000000Z``: ISO 8601 in UTC with microseconds. ``moment`` must be aware."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("ingested_at must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _canonical_batch_id(batch_id: str) -> str:
    try:
        parsed = uuid.UUID(batch_id)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"batch_id {batch_id!r} is not a UUID") from exc
    if parsed.version not in ACCEPTED_BATCH_ID_VERSIONS:
        raise ValueError(f"batch_id {batch_id!r} is a version-{parsed.version} UUID; use version 4 or 7")
    return str(parsed)
