"""The records the benchmark reads: realistic ~300-byte envelopes, and poison the runner dead-letters.

Payloads are the example consumer's financial-institution records, valid by its payload schema
(``institution.v1.json``: registry id, name, routing number, country, state, city, website, assets), drawn from
a seeded generator so every run writes the same bytes. Poison records are schema-invalid
envelopes of three kinds, in turn: no ``record_id``, a ``batch_id`` that is not a UUID, a payload that is
not an object. They sit at evenly spread positions, never first or last, so every variant's first and last
record is a valid one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from neotool_common.producing.envelope import build_envelope, encode_envelope, new_batch_id

__all__ = ["POISON_EVERY", "envelope_values", "is_poison", "poison_count"]

POISON_EVERY = 100  # 1% of the records
_POISON_PHASE = 50
_CITIES = (
    ("Springfield", "IL", "62701"),
    ("Portland", "OR", "97201"),
    ("Columbus", "OH", "43215"),
    ("Austin", "TX", "78701"),
    ("Madison", "WI", "53703"),
    ("Raleigh", "NC", "27601"),
)
_KINDS = ("National Bank", "Savings Bank", "Credit Union", "Trust Company", "Federal Savings")
_REGISTRIES = ("FDIC", "NCUA", "OCC")
_EPOCH = datetime(2024, 5, 1, tzinfo=UTC)


def is_poison(index: int, total: int) -> bool:
    return index % POISON_EVERY == _POISON_PHASE and 0 < index < total - 1


def poison_count(total: int) -> int:
    return sum(1 for i in range(_POISON_PHASE, total, POISON_EVERY) if is_poison(i, total))


def envelope_values(total: int, *, poison: bool, seed: int = 7) -> Iterator[tuple[bytes, bytes]]:
    """``(key, value)`` of ``total`` records; with ``poison``, 1% of them are schema-invalid."""
    rng = random.Random(seed)
    batch_id = new_batch_id()
    for index in range(total):
        record_id = f"inst-{index:09d}"
        envelope = build_envelope(
            _payload(rng, index),
            record_id=record_id,
            batch_id=batch_id,
            ingested_at=_EPOCH + timedelta(milliseconds=index),
        )
        if poison and is_poison(index, total):
            _spoil(envelope, index // POISON_EVERY)
        yield record_id.encode(), encode_envelope(envelope)


def _payload(rng: random.Random, index: int) -> dict[str, object]:
    city, state, _ = rng.choice(_CITIES)
    kind = rng.choice(_KINDS)
    return {
        "institution_id": f"{rng.choice(_REGISTRIES)}-{index:07d}",
        "name": f"{city} {kind}",
        "routing_number": f"{rng.randrange(10**8, 10**9):09d}",
        "country": "US",
        "state": state,
        "city": city,
        "website": f"https://{city.lower()}.example/",
        "total_assets_usd": rng.randrange(10**6, 10**11),
    }


def _spoil(envelope: dict[str, object], turn: int) -> None:
    kind = turn % 3
    if kind == 0:
        del envelope["record_id"]
    elif kind == 1:
        envelope["batch_id"] = "not-a-uuid"
    else:
        envelope["payload"] = ["not", "an", "object"]
