"""ABA routing numbers: the check digit and the prefix classes decide what is poison."""

from __future__ import annotations

import pytest

from institution_enhancement.tasks.routing import (
    InvalidRoutingNumberError,
    RoutingClass,
    check_digit,
    parse_routing_number,
)


@pytest.mark.parametrize(
    ("number", "routing_class", "district"),
    [
        ("011000015", RoutingClass.BANK, 1),  # Federal Reserve Bank of Boston
        ("021000021", RoutingClass.BANK, 2),  # a New York money-centre bank
        ("121000358", RoutingClass.BANK, 12),  # a San Francisco district bank
        ("322271627", RoutingClass.THRIFT, 12),  # thrift prefix 32 = district 12 + 20
        ("256074974", RoutingClass.THRIFT, 5),  # thrift prefix 25 = district 5 + 20
        ("000000000", RoutingClass.GOVERNMENT, None),
    ],
)
def test_published_routing_numbers_are_accepted_and_classified(
    number: str, routing_class: RoutingClass, district: int | None
) -> None:
    parsed = parse_routing_number(number)
    assert (parsed.number, parsed.routing_class, parsed.fed_district) == (number, routing_class, district)


@pytest.mark.parametrize(("first_eight", "digit"), [("01100001", 5), ("02100002", 1), ("32227162", 7)])
def test_check_digit_completes_a_published_number(first_eight: str, digit: int) -> None:
    assert check_digit(first_eight) == digit


@pytest.mark.parametrize("digit", [d for d in "0123456789" if d != "1"])
def test_every_wrong_ninth_digit_is_rejected(digit: str) -> None:
    parse_routing_number("021000021")
    with pytest.raises(InvalidRoutingNumberError, match="fails its ABA checksum"):
        parse_routing_number("02100002" + digit)


@pytest.mark.parametrize("prefix", ["13", "20", "33", "60", "73", "81", "99"])
def test_unassigned_prefixes_are_rejected_even_with_a_valid_check_digit(prefix: str) -> None:
    body = prefix + "123456"
    with pytest.raises(InvalidRoutingNumberError, match=f"unassigned prefix {prefix}"):
        parse_routing_number(body + str(check_digit(body)))


@pytest.mark.parametrize(
    ("prefix", "routing_class", "district"),
    [
        ("01", "bank", 1),
        ("12", "bank", 12),
        ("21", "thrift", 1),
        ("72", "electronic", 12),
        ("80", "travelers_cheque", None),
    ],
)
def test_prefix_boundaries(prefix: str, routing_class: str, district: int | None) -> None:
    body = prefix + "000000"
    parsed = parse_routing_number(body + str(check_digit(body)))
    assert (parsed.routing_class.value, parsed.fed_district) == (routing_class, district)


FULL_WIDTH_DIGITS = "".join(chr(0xFF10 + int(d)) for d in "011000015")  # isdigit(), but not ASCII


@pytest.mark.parametrize("number", ["", "12345678", "0110000150", "01100001a", FULL_WIDTH_DIGITS])
def test_anything_but_nine_ascii_digits_is_rejected(number: str) -> None:
    with pytest.raises(InvalidRoutingNumberError, match="not nine digits"):
        parse_routing_number(number)
