"""Realistic sample records for demos and tests: the same seed always gives the same records.

Most records are valid institutions; a few are marked to show the error paths:

=================  ====================================================  ==========================
outcome            what is wrong                                         what the consumer does
=================  ====================================================  ==========================
``stored``         nothing                                               one row
``rate_limited``   header ``x-simulate: rate-limited-once``              retried once, then one row
``poison``         routing number with a wrong check digit               ``<topic>.dlq``, reason poison
``invalid``        routing number of five digits (breaks the schema)     ``<topic>.dlq``, reason validation
=================  ====================================================  ==========================
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

import orjson

from institution_enhancement.tasks.directory import RATE_LIMITED_ONCE, SIMULATE_HEADER
from institution_enhancement.tasks.routing import check_digit
from neotool_common import EnvelopeProducer, KafkaConnection

__all__ = ["DEFAULT_START", "Outcome", "SampleRecord", "publish_samples", "sample_records"]

DEFAULT_START: Final = datetime(2025, 1, 6, 2, 0, tzinfo=UTC)

_PLACES: Final = (
    ("Boston", "MA", 1),
    ("Hartford", "CT", 1),
    ("New York", "NY", 2),
    ("Buffalo", "NY", 2),
    ("Philadelphia", "PA", 3),
    ("Cleveland", "OH", 4),
    ("Pittsburgh", "PA", 4),
    ("Richmond", "VA", 5),
    ("Baltimore", "MD", 5),
    ("Atlanta", "GA", 6),
    ("Nashville", "TN", 6),
    ("Chicago", "IL", 7),
    ("Milwaukee", "WI", 7),
    ("St. Louis", "MO", 8),
    ("Louisville", "KY", 8),
    ("Minneapolis", "MN", 9),
    ("Helena", "MT", 9),
    ("Kansas City", "MO", 10),
    ("Denver", "CO", 10),
    ("Omaha", "NE", 10),
    ("Dallas", "TX", 11),
    ("El Paso", "TX", 11),
    ("San Francisco", "CA", 12),
    ("Seattle", "WA", 12),
    ("Salt Lake City", "UT", 12),
)
_STATE_NAMES: Final = {
    "MA": "Massachusetts", "CT": "Connecticut", "NY": "New York", "PA": "Pennsylvania", "OH": "Ohio",
    "VA": "Virginia", "MD": "Maryland", "GA": "Georgia", "TN": "Tennessee", "IL": "Illinois", "WI": "Wisconsin",
    "MO": "Missouri", "KY": "Kentucky", "MN": "Minnesota", "MT": "Montana", "CO": "Colorado", "NE": "Nebraska",
    "TX": "Texas", "CA": "California", "WA": "Washington", "UT": "Utah",
}  # fmt: skip
_SURNAMES: Final = (
    "Whitfield", "Harlan", "Okafor", "Lindqvist", "Castellano", "Brennan", "Nakamura", "Abernathy", "Delacroix",
    "Marsh", "Petrovic", "Ashworth", "Quintero", "Halvorsen", "Adeyemi",
)  # fmt: skip
# (name template, regulator prefix of institution_id, thrift routing prefix?, website TLD)
_TEMPLATES: Final = (
    ("First National Bank of {city}", "OCC", False, "com"),
    ("{surname} & {surname2} Bank, N.A.", "OCC", False, "com"),
    ("{city} Community Credit Union", "NCUA", True, "org"),
    ("{city} Teachers Federal Credit Union", "NCUA", True, "org"),
    ("{surname} Savings Bank", "FDIC", True, "com"),
    ("{city} Federal Savings and Loan Association", "FDIC", True, "com"),
    ("{state_name} Trust Company", "FDIC", False, "com"),
    ("The {surname} State Bank", "FDIC", False, "com"),
)
_BIC_LOCATIONS: Final = ("33", "44", "3N", "6S", "4A")


class Outcome(StrEnum):
    STORED = "stored"
    RATE_LIMITED = "rate_limited"  # stored, after one transient failure and a retry
    POISON = "poison"  # dead-lettered with dlq.reason=poison
    INVALID = "invalid"  # dead-lettered with dlq.reason=validation


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One Kafka record to publish (key, value, headers) and what the consumer should make of it."""

    record_id: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    outcome: Outcome

    @property
    def envelope(self) -> dict[str, Any]:
        decoded: dict[str, Any] = orjson.loads(self.value)
        return decoded


def sample_records(
    count: int,
    *,
    seed: int = 7,
    poison_ratio: float = 0.03,
    rate_limited_ratio: float = 0.02,
    invalid_ratio: float = 0.0,
    batch_id: str | None = None,
    start: datetime = DEFAULT_START,
) -> list[SampleRecord]:
    """``count`` envelopes of one batch; each non-zero ratio marks at least one record (when ``count`` allows).

    ``record_id`` is the institution's id, so publishing the same seed twice re-sends the same records.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible sample data, not secrets
    batch = batch_id or str(uuid.UUID(int=rng.getrandbits(128), version=4))
    outcomes = _assign_outcomes(rng, count, poison_ratio, rate_limited_ratio, invalid_ratio)
    return [
        _sample(rng, seed, index, outcomes[index], batch, start + timedelta(milliseconds=250 * index))
        for index in range(count)
    ]


def _assign_outcomes(rng: random.Random, count: int, *ratios: float) -> list[Outcome]:
    outcomes = [Outcome.STORED] * count
    wanted = [(max(1, round(count * r)) if r > 0 else 0) for r in ratios]
    marked = rng.sample(range(count), min(count, sum(wanted)))
    for outcome, how_many in zip((Outcome.POISON, Outcome.RATE_LIMITED, Outcome.INVALID), wanted, strict=True):
        for index in marked[:how_many]:
            outcomes[index] = outcome
        marked = marked[how_many:]
    return outcomes


def _sample(
    rng: random.Random, seed: int, index: int, outcome: Outcome, batch_id: str, ingested_at: datetime
) -> SampleRecord:
    payload = _institution(rng, seed, index)
    if outcome is Outcome.POISON:
        good = int(payload["routing_number"][8])
        payload["routing_number"] = payload["routing_number"][:8] + str((good + rng.randrange(1, 10)) % 10)
    elif outcome is Outcome.INVALID:
        payload["routing_number"] = payload["routing_number"][:5]
    record_id = payload["institution_id"]
    envelope = {
        "batch_id": batch_id,
        "record_id": record_id,
        "ingested_at": ingested_at.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "payload": payload,
    }
    headers = ((SIMULATE_HEADER, RATE_LIMITED_ONCE.encode()),) if outcome is Outcome.RATE_LIMITED else ()
    return SampleRecord(record_id, record_id.encode(), orjson.dumps(envelope), headers, outcome)


def _institution(rng: random.Random, seed: int, index: int) -> dict[str, Any]:
    city, state, district = rng.choice(_PLACES)
    template, regulator, thrift, tld = rng.choice(_TEMPLATES)
    first, second = rng.sample(_SURNAMES, 2)
    name = template.format(city=city, surname=first, surname2=second, state_name=_STATE_NAMES[state])
    prefix = f"{district + (20 if thrift else 0):02d}"
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(6))
    slug = "".join(ch for ch in name.lower() if ch.isalnum())[:40]
    institution: dict[str, Any] = {
        "institution_id": f"{regulator}-{seed}{index:06d}",
        "name": name,
        "routing_number": body + str(check_digit(body)),
        "country": "US",
        "state": state,
        "city": city,
        "website": f"https://www.{slug}.{tld}/",
        "total_assets_usd": int(rng.lognormvariate(19.0, 1.8)),
    }
    if not thrift and rng.random() < 0.6:
        letters = "".join(word[0] for word in name.upper().split() if word[0].isalpha())
        institution["swift_bic"] = (letters + "XXXX")[:4] + "US" + rng.choice(_BIC_LOCATIONS)
    return institution


def publish_samples(
    connection: KafkaConnection | str, topic: str, records: Sequence[SampleRecord], timeout_s: float = 30.0
) -> None:
    """Publish ``records`` in order with the platform's producer (§4.3); raises unless every one is acknowledged."""
    if isinstance(connection, str):
        connection = KafkaConnection(brokers=connection)
    with EnvelopeProducer(connection) as producer:
        for record in records:
            producer.publish_raw(topic, record.value, key=record.key, headers=list(record.headers))
        report = producer.flush(timeout_s)  # raises DeliveryError when a record finally failed
    if report.pending:
        raise RuntimeError(f"{report.pending} of {len(records)} records unacknowledged after {timeout_s}s")
