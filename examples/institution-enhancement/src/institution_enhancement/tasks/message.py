"""The job's data: the institution a record carries, and the enriched row written for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["EnhancedInstitution", "Institution", "SourcePosition"]


@dataclass(frozen=True, slots=True)
class Institution:
    """The payload of one ``financial.institution.v1`` record (already checked against its JSON Schema)."""

    institution_id: str
    name: str
    routing_number: str
    country: str
    state: str | None = None
    city: str | None = None
    swift_bic: str | None = None
    website: str | None = None
    total_assets_usd: int | None = None

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Institution:
        return cls(
            institution_id=payload["institution_id"],
            name=payload["name"],
            routing_number=payload["routing_number"],
            country=payload["country"],
            state=payload.get("state"),
            city=payload.get("city"),
            swift_bic=payload.get("swift_bic"),
            website=payload.get("website"),
            total_assets_usd=payload.get("total_assets_usd"),
        )


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where the record was read from: kept on the row so any value can be traced back to its message."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class EnhancedInstitution:
    """One row of ``institution_enhancement.institutions``, keyed on ``record_id``."""

    record_id: str
    batch_id: str
    ingested_at: datetime
    institution_id: str
    name: str
    normalized_name: str
    institution_type: str
    routing_number: str
    routing_class: str
    fed_district: int | None
    servicing_fed_office: str | None
    country: str
    state: str | None
    city: str | None
    swift_bic: str | None
    website_domain: str | None
    total_assets_usd: int | None
    source: SourcePosition
