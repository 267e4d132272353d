"""institution-enhancement: a neotool-common consumer that enriches financial-institution records.

Reads ``financial.institution.v1``, checks each routing number, looks the institution up in the routing
directory and upserts the enriched row into PostgreSQL (or an embedded SQLite file) keyed on
``record_id``. The consumer lives in :mod:`institution_enhancement.flows.consumer`; the business logic
in :mod:`institution_enhancement.tasks`.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
