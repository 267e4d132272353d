"""The routing directory the job consults for each institution, and the simulated one it ships with.

A real deployment would call the Federal Reserve's E-Payments Routing Directory (a paid, rate-limited
HTTP API); :class:`SimulatedFedDirectory` answers from the district table instead so the example runs
anywhere. It keeps the one behaviour of the real service that matters to a consumer: it can refuse a
lookup with :class:`DirectoryRateLimitedError`, a transient error the runner retries with backoff. The
publisher asks for that once per record with the header ``x-simulate: rate-limited-once``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Final, Protocol

from institution_enhancement.tasks.routing import RoutingNumber

__all__ = [
    "FED_OFFICES",
    "RATE_LIMITED_ONCE",
    "SIMULATE_HEADER",
    "DirectoryEntry",
    "DirectoryRateLimitedError",
    "LookupRequest",
    "RoutingDirectory",
    "SimulatedFedDirectory",
]

SIMULATE_HEADER: Final = "x-simulate"
RATE_LIMITED_ONCE: Final = "rate-limited-once"

# The head office of each Federal Reserve district, which services that district's routing numbers.
FED_OFFICES: Final = {
    1: "Boston",
    2: "New York",
    3: "Philadelphia",
    4: "Cleveland",
    5: "Richmond",
    6: "Atlanta",
    7: "Chicago",
    8: "St. Louis",
    9: "Minneapolis",
    10: "Kansas City",
    11: "Dallas",
    12: "San Francisco",
}


class DirectoryRateLimitedError(Exception):
    """The directory refused the lookup for now (HTTP 429 in the real service): transient, so retried."""

    def __init__(self, routing_number: str, retry_after_ms: int) -> None:
        self.retry_after_ms = retry_after_ms
        super().__init__(f"routing directory rate-limited the lookup of {routing_number}; retry in {retry_after_ms} ms")


@dataclass(frozen=True, slots=True)
class LookupRequest:
    routing: RoutingNumber
    record_id: str
    simulate_rate_limit: bool = False


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    servicing_fed_office: str | None


class RoutingDirectory(Protocol):
    """Looks up a routing number. May block on I/O; raises a transient exception when it cannot answer now."""

    def lookup(self, request: LookupRequest) -> DirectoryEntry: ...


class SimulatedFedDirectory:
    """Answers from :data:`FED_OFFICES`; refuses the first lookup of each record that asks to be throttled."""

    def __init__(self, retry_after_ms: int = 50) -> None:
        self._retry_after_ms = retry_after_ms
        self._throttled: set[str] = set()
        self._lock = threading.Lock()
        self.lookups = 0
        self.refusals = 0

    def lookup(self, request: LookupRequest) -> DirectoryEntry:
        with self._lock:
            self.lookups += 1
            if request.simulate_rate_limit and request.record_id not in self._throttled:
                self._throttled.add(request.record_id)
                self.refusals += 1
                raise DirectoryRateLimitedError(request.routing.number, self._retry_after_ms)
        district = request.routing.fed_district
        return DirectoryEntry(servicing_fed_office=None if district is None else FED_OFFICES[district])
