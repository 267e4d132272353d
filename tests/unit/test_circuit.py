"""CircuitBreaker: trips on dead-letters in a row or on the DLQ share of a sliding window; successes reset it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from neotool_common.deadletter.circuit import CircuitBreaker, CircuitBreakerPolicy
from neotool_common.errors import CircuitOpenError


def test_it_trips_on_the_nth_dead_letter_in_a_row() -> None:
    breaker = CircuitBreaker(CircuitBreakerPolicy(max_consecutive=3, max_ratio=1))
    breaker.dead_lettered()
    breaker.dead_lettered()
    with pytest.raises(CircuitOpenError, match="3 records in a row"):
        breaker.dead_lettered()


def test_a_success_resets_the_run_of_dead_letters() -> None:
    breaker = CircuitBreaker(CircuitBreakerPolicy(max_consecutive=3, max_ratio=1))
    for _ in range(10):
        breaker.dead_lettered()
        breaker.dead_lettered()
        breaker.succeeded()
    assert breaker.consecutive == 0
    breaker.dead_lettered()
    assert breaker.consecutive == 1


def test_zero_consecutive_never_trips() -> None:
    breaker = CircuitBreaker(CircuitBreakerPolicy(max_consecutive=0, max_ratio=1))
    for _ in range(10_000):
        breaker.dead_lettered()
    assert breaker.consecutive == 10_000


def test_the_ratio_is_judged_only_once_a_full_window_was_seen() -> None:
    breaker = CircuitBreaker(CircuitBreakerPolicy(max_consecutive=0, max_ratio=0.5, window=100))
    breaker.observe(99, 99)  # all dead, but fewer records than the window
    with pytest.raises(CircuitOpenError, match=re.escape("100 of the last 100 records")):
        breaker.observe(1, 1)


def test_the_ratio_must_be_exceeded_not_reached() -> None:
    breaker = CircuitBreaker(CircuitBreakerPolicy(max_consecutive=0, max_ratio=0.5, window=10))
    breaker.observe(10, 5)
    with pytest.raises(CircuitOpenError, match="limit 50%"):
        breaker.observe(1, 1)


def test_a_healthy_history_slides_out_and_does_not_dilute_a_new_burst() -> None:
    breaker = CircuitBreaker(CircuitBreakerPolicy(max_consecutive=0, max_ratio=0.5, window=10))
    for _ in range(10):
        breaker.observe(10, 0)
    breaker.observe(10, 5)  # 5 of the last 10: at the limit, not above it
    with pytest.raises(CircuitOpenError, match=re.escape("6 of the last 10 records")):
        breaker.observe(10, 6)  # 6 of the last 10, though only 11 of 120 overall


def test_batches_are_the_unit_so_the_window_keeps_at_least_window_records() -> None:
    breaker = CircuitBreaker(CircuitBreakerPolicy(max_consecutive=0, max_ratio=0.5, window=10))
    breaker.observe(10, 0)
    breaker.observe(5, 5)
    breaker.observe(3, 3)  # 8 of 18: the healthy batch stays until newer batches alone fill the window
    with pytest.raises(CircuitOpenError, match=re.escape("11 of the last 11 records")):
        breaker.observe(3, 3)


def test_empty_batches_and_a_ratio_of_one_never_trip() -> None:
    never = CircuitBreaker(CircuitBreakerPolicy(max_consecutive=0, max_ratio=1, window=1))
    never.observe(1000, 1000)
    half = CircuitBreaker(CircuitBreakerPolicy(max_consecutive=0, max_ratio=0.5, window=1))
    half.observe(0, 0)
    with pytest.raises(CircuitOpenError):
        half.observe(1, 1)


@pytest.mark.parametrize("arguments", [{"max_consecutive": -1}, {"max_ratio": 0}, {"max_ratio": 1.01}, {"window": 0}])
def test_impossible_policies_are_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="need max_consecutive >= 0"):
        CircuitBreakerPolicy(**arguments)
