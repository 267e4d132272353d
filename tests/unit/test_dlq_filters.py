"""Filters select exactly the records they describe, and name their selection stably."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from neotool_common.dlqtool.filters import RecordFilter, TimeBound, parse_time_bound, select
from neotool_common.errors import ConfigurationError
from tests.dlq_support import Failure, dlq_record, minutes_after_base

NOW = datetime(2024, 5, 2, 12, 0, tzinfo=UTC)

RECORDS = [
    dlq_record("a", Failure(reason="poison", exception_type="orders.errors.BadAmount"), offset=0),
    dlq_record("b", Failure(reason="retries_exhausted", exception_type="builtins.TimeoutError"), offset=1),
    dlq_record("c", Failure(reason="validation", failed_at=minutes_after_base(30)), offset=2),
    dlq_record("d", Failure(reason="retries_exhausted", failed_at=minutes_after_base(90)), offset=3, partition=1),
]


def ids(record_filter: RecordFilter, limit: int | None = None) -> list[str]:
    return [record.record_id for record in select(RECORDS, record_filter, limit)]


def test_an_empty_filter_selects_everything() -> None:
    assert RecordFilter().is_empty
    assert ids(RecordFilter()) == ["a", "b", "c", "d"]


def test_each_criterion_selects_exactly_its_records() -> None:
    assert ids(RecordFilter(reasons=frozenset({"retries_exhausted"}))) == ["b", "d"]
    assert ids(RecordFilter(reasons=frozenset({"poison", "validation"}))) == ["a", "c"]
    assert ids(RecordFilter(record_ids=frozenset({"c", "zz"}))) == ["c"]
    assert ids(RecordFilter(partitions=frozenset({1}))) == ["d"]
    assert ids(RecordFilter(offset_from=1, offset_to=2)) == ["b", "c"]
    assert ids(RecordFilter(offset_from=2)) == ["c", "d"]


def test_exception_type_matches_the_qualified_or_the_short_name() -> None:
    assert ids(RecordFilter(exception_types=frozenset({"builtins.TimeoutError"}))) == ["b"]
    assert ids(RecordFilter(exception_types=frozenset({"TimeoutError"}))) == ["b"]
    assert ids(RecordFilter(exception_types=frozenset({"errors.TimeoutError"}))) == []
    assert ids(RecordFilter(exception_types=frozenset({"BadAmount"}))) == ["a", "c", "d"]


def test_criteria_combine_with_and() -> None:
    both = RecordFilter(reasons=frozenset({"retries_exhausted"}), exception_types=frozenset({"BadAmount"}))
    assert ids(both) == ["d"]


def test_failure_time_window_is_inclusive_and_skips_records_without_a_time() -> None:
    since = TimeBound("s", minutes_after_base(30))
    until = TimeBound("u", minutes_after_base(30))
    assert ids(RecordFilter(since=since)) == ["c", "d"]
    assert ids(RecordFilter(until=until)) == ["a", "b", "c"]
    assert ids(RecordFilter(since=since, until=until)) == ["c"]
    undated = dataclasses.replace(dlq_record("x"), failed_at=None)
    assert list(select([undated], RecordFilter(since=TimeBound("s", minutes_after_base(-60))))) == []


def test_limit_stops_after_that_many_matches() -> None:
    assert ids(RecordFilter(reasons=frozenset({"retries_exhausted", "validation"})), limit=2) == ["b", "c"]
    assert ids(RecordFilter(), limit=0) == []


def test_relative_and_absolute_time_bounds() -> None:
    two_hours = parse_time_bound("2h", NOW)
    assert two_hours == TimeBound("7200s-ago", NOW - timedelta(hours=2))
    assert parse_time_bound("30m", NOW).moment == NOW - timedelta(minutes=30)
    assert parse_time_bound("1w", NOW).moment == NOW - timedelta(days=7)
    absolute = parse_time_bound("2024-05-01T05:00:00+02:00", NOW)
    assert absolute.moment == datetime(2024, 5, 1, 3, 0, tzinfo=UTC)
    with pytest.raises(ConfigurationError, match="--until: 'soon' is neither"):
        parse_time_bound("soon", NOW, "--until")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"reasons": frozenset({"oops"})}, "--reason: oops is not one of decode, validation, poison"),
        ({"offset_from": 5, "offset_to": 4}, "--offset-from: 5 is after --offset-to 4"),
        ({"offset_to": -1}, "--offset-to: must be 0 or more"),
        ({"partitions": frozenset({-1})}, "--partition: must be 0 or more"),
        (
            {"since": TimeBound("a", minutes_after_base(10)), "until": TimeBound("b", minutes_after_base(0))},
            "--since: is later than --until",
        ),
    ],
)
def test_impossible_filters_are_configuration_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RecordFilter(**kwargs)  # type: ignore[arg-type]


def test_fingerprint_names_the_selection_not_the_moment() -> None:
    a = RecordFilter(reasons=frozenset({"poison"}), since=parse_time_bound("2h", NOW))
    b = RecordFilter(reasons=frozenset({"poison"}), since=parse_time_bound("120m", NOW + timedelta(hours=1)))
    c = RecordFilter(reasons=frozenset({"decode"}), since=parse_time_bound("2h", NOW))

    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert len(a.fingerprint()) == 10


def test_to_args_round_trips_through_the_command_line_options() -> None:
    record_filter = RecordFilter(
        reasons=frozenset({"poison"}),
        exception_types=frozenset({"TimeoutError"}),
        record_ids=frozenset({"r 1"}),
        since=parse_time_bound("90m", NOW),
        until=parse_time_bound("2024-05-03T03:00:00Z", NOW),
        partitions=frozenset({2}),
        offset_from=4,
        offset_to=9,
    )

    assert record_filter.to_args() == [
        "--reason", "poison",
        "--exception-type", "TimeoutError",
        "--record-id", "r 1",
        "--partition", "2",
        "--since", "90m",
        "--until", "2024-05-03T03:00:00+00:00",
        "--offset-from", "4",
        "--offset-to", "9",
    ]  # fmt: skip
    assert RecordFilter().to_args() == []
