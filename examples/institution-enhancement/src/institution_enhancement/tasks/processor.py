"""What the job does with one record: check the routing number, look it up, enrich, upsert.

Errors, as the runner sees them:

* :class:`~neotool_common.errors.PoisonMessageError` for a routing number that fails its check digit or
  has an unassigned prefix: the record can never succeed, so it goes to ``<topic>.dlq`` at once;
* :class:`~institution_enhancement.tasks.directory.DirectoryRateLimitedError` and database errors such
  as ``psycopg.OperationalError`` are transient: the runner retries the record with backoff.

The upsert is keyed on ``record_id``, so processing a record twice (a retry after the write, or a
redelivery after a crash before the commit) leaves the same single row.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from institution_enhancement.tasks.directory import (
    RATE_LIMITED_ONCE,
    SIMULATE_HEADER,
    DirectoryEntry,
    LookupRequest,
    RoutingDirectory,
)
from institution_enhancement.tasks.message import EnhancedInstitution, Institution, SourcePosition
from institution_enhancement.tasks.routing import InvalidRoutingNumberError, RoutingNumber, parse_routing_number
from institution_enhancement.tasks.store import InstitutionStore
from neotool_common import Message
from neotool_common.errors import PoisonMessageError

__all__ = ["InstitutionProcessor", "classify_institution", "enhance", "normalize_name", "website_domain"]

_NOT_NAME_CHARS = re.compile(r"[^A-Z0-9& ]+")
_LEGAL_SUFFIXES: Final = frozenset({"NA", "INC", "FSB", "SSB", "CORP", "CO", "LLC", "THE"})
# Checked in order: "Savings Bank" is a savings institution, "Trust Bank" a commercial bank.
_TYPE_KEYWORDS: Final = (
    ("CREDIT UNION", "credit_union"),
    ("SAVINGS", "savings_institution"),
    ("BUILDING AND LOAN", "savings_institution"),
    ("THRIFT", "savings_institution"),
    ("TRUST COMPANY", "trust_company"),
    ("TRUST CO", "trust_company"),
)


class InstitutionProcessor:
    """Turns one validated message into one upserted row. Thread-safe when its store and directory are (both of
    this package's are): the runner calls it from several worker threads at once."""

    def __init__(self, store: InstitutionStore, directory: RoutingDirectory) -> None:
        self._store = store
        self._directory = directory

    def process(self, message: Message) -> EnhancedInstitution:
        institution = Institution.from_payload(message.payload)
        routing = _checked_routing_number(institution.routing_number)
        throttle = message.header(SIMULATE_HEADER) == RATE_LIMITED_ONCE
        entry = self._directory.lookup(LookupRequest(routing, message.record_id, simulate_rate_limit=throttle))
        row = enhance(message, institution, routing, entry)
        self._store.upsert(row)
        return row


def _checked_routing_number(number: str) -> RoutingNumber:
    try:
        return parse_routing_number(number)
    except InvalidRoutingNumberError as exc:
        raise PoisonMessageError(str(exc), path="$.payload.routing_number") from exc


def enhance(
    message: Message, institution: Institution, routing: RoutingNumber, entry: DirectoryEntry
) -> EnhancedInstitution:
    """The row for ``institution``: its own fields plus what its name, routing number and website say."""
    return EnhancedInstitution(
        record_id=message.record_id,
        batch_id=message.batch_id,
        ingested_at=message.ingested_at,
        institution_id=institution.institution_id,
        name=" ".join(institution.name.split()),
        normalized_name=normalize_name(institution.name),
        institution_type=classify_institution(institution.name),
        routing_number=routing.number,
        routing_class=routing.routing_class.value,
        fed_district=routing.fed_district,
        servicing_fed_office=entry.servicing_fed_office,
        country=institution.country,
        state=institution.state,
        city=institution.city,
        swift_bic=institution.swift_bic,
        website_domain=website_domain(institution.website),
        total_assets_usd=institution.total_assets_usd,
        source=SourcePosition(message.topic, message.partition, message.offset),
    )


def normalize_name(name: str) -> str:
    """A matching key: upper case, no punctuation, no trailing legal suffix (``First Bank, N.A.`` -> ``FIRST BANK``)."""
    words = _NOT_NAME_CHARS.sub(" ", name.upper().replace(".", "")).split()
    while len(words) > 1 and words[-1] in _LEGAL_SUFFIXES:
        words.pop()
    if len(words) > 1 and words[0] == "THE":
        words.pop(0)
    return " ".join(words)


def classify_institution(name: str) -> str:
    upper = " ".join(name.upper().split())
    for keyword, kind in _TYPE_KEYWORDS:
        if keyword in upper:
            return kind
    return "commercial_bank"


def website_domain(website: str | None) -> str | None:
    """``https://www.Example-Bank.com/about`` -> ``example-bank.com``."""
    if not website:
        return None
    host = urlsplit(website).hostname
    if not host:
        return None
    return host.removeprefix("www.")
