"""ABA routing transit numbers: the check digit and what the first two digits say.

A routing number is nine digits ``d1..d9`` with ``3(d1+d4+d7) + 7(d2+d5+d8) + (d3+d6+d9) ≡ 0 (mod 10)``.
Its first two digits tell the kind of institution and, for most, the Federal Reserve district:

======  =====================================  =====================
prefix  meaning                                district
======  =====================================  =====================
00      United States government               none
01-12   banks                                  the prefix
21-32   thrifts (savings banks, credit unions)  prefix - 20
61-72   electronic transactions                prefix - 60
80      traveler's cheques                     none
======  =====================================  =====================

Any other prefix, or a wrong check digit, means the number was mistyped or forged: no retry can fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["InvalidRoutingNumberError", "RoutingClass", "RoutingNumber", "check_digit", "parse_routing_number"]

_WEIGHTS: Final = (3, 7, 1, 3, 7, 1, 3, 7, 1)


class RoutingClass(StrEnum):
    GOVERNMENT = "government"
    BANK = "bank"
    THRIFT = "thrift"
    ELECTRONIC = "electronic"
    TRAVELERS_CHEQUE = "travelers_cheque"


class InvalidRoutingNumberError(ValueError):
    """The number can never be valid: not nine digits, a wrong check digit, or an unassigned prefix."""


@dataclass(frozen=True, slots=True)
class RoutingNumber:
    number: str
    routing_class: RoutingClass
    fed_district: int | None


def check_digit(first_eight: str) -> int:
    """The ninth digit that makes ``first_eight`` a valid routing number."""
    if len(first_eight) != 8 or not first_eight.isascii() or not first_eight.isdigit():
        raise ValueError(f"expected eight digits, got {first_eight!r}")
    partial = sum(w * int(d) for w, d in zip(_WEIGHTS, first_eight, strict=False))
    return -partial % 10


def parse_routing_number(number: str) -> RoutingNumber:
    """Check ``number`` and classify it; raises :class:`InvalidRoutingNumberError` when it is not a real one."""
    if len(number) != 9 or not number.isascii() or not number.isdigit():
        raise InvalidRoutingNumberError(f"routing number {number!r} is not nine digits")
    if check_digit(number[:8]) != int(number[8]):
        raise InvalidRoutingNumberError(f"routing number {number} fails its ABA checksum")
    routing_class, district = _classify(int(number[:2]))
    if routing_class is None:
        raise InvalidRoutingNumberError(f"routing number {number} has the unassigned prefix {number[:2]}")
    return RoutingNumber(number, routing_class, district)


def _classify(prefix: int) -> tuple[RoutingClass | None, int | None]:
    if prefix == 0:
        return RoutingClass.GOVERNMENT, None
    if prefix == 80:
        return RoutingClass.TRAVELERS_CHEQUE, None
    for base, routing_class in ((0, RoutingClass.BANK), (20, RoutingClass.THRIFT), (60, RoutingClass.ELECTRONIC)):
        if base + 1 <= prefix <= base + 12:
            return routing_class, prefix - base
    return None, None
