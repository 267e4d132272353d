"""RetryPolicy: bounds, exponential growth, the jitter range and the cap on a single backoff."""

from __future__ import annotations

import re
from typing import Any

import pytest

from neotool_common.policies.retry import RetryPolicy

SAMPLES = 200


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"initial_backoff_s": -0.1}, "need 0 <= initial_backoff_s <= max_backoff_s"),
        ({"initial_backoff_s": 2.0, "max_backoff_s": 1.0}, "need 0 <= initial_backoff_s <= max_backoff_s"),
        ({"multiplier": 0.5}, "multiplier must be at least 1"),
    ],
)
def test_impossible_policies_are_refused(arguments: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        RetryPolicy(**arguments)


def test_without_jitter_the_backoff_doubles_from_the_initial_wait() -> None:
    policy = RetryPolicy(initial_backoff_s=0.25, max_backoff_s=100, jitter_s=0)
    assert [policy.backoff(attempt) for attempt in range(1, 7)] == [0.25, 0.5, 1, 2, 4, 8]


def test_the_multiplier_sets_the_growth() -> None:
    policy = RetryPolicy(initial_backoff_s=1, max_backoff_s=1000, multiplier=3, jitter_s=0)
    assert [policy.backoff(attempt) for attempt in range(1, 5)] == [1, 3, 9, 27]
    flat = RetryPolicy(initial_backoff_s=0.2, max_backoff_s=30, multiplier=1, jitter_s=0)
    assert {flat.backoff(attempt) for attempt in range(1, 20)} == {0.2}


@pytest.mark.parametrize("attempt", [1, 2, 3, 5])
def test_jitter_adds_up_to_jitter_s_and_varies(attempt: int) -> None:
    policy = RetryPolicy(initial_backoff_s=0.1, max_backoff_s=60, jitter_s=0.05)
    base = 0.1 * 2 ** (attempt - 1)
    waits = [policy.backoff(attempt) for _ in range(SAMPLES)]
    assert all(base <= wait <= base + 0.05 for wait in waits)
    assert len(set(waits)) > SAMPLES // 2, "the jitter is random, so concurrent retries spread out"


def test_the_default_jitter_is_the_initial_backoff() -> None:
    policy = RetryPolicy(initial_backoff_s=0.2, max_backoff_s=30)
    waits = [policy.backoff(1) for _ in range(SAMPLES)]
    assert all(0.2 <= wait <= 0.4 for wait in waits)
    assert max(waits) - min(waits) > 0.1


def test_no_backoff_exceeds_the_cap_even_with_jitter_or_huge_attempt_numbers() -> None:
    policy = RetryPolicy(initial_backoff_s=0.5, max_backoff_s=3, jitter_s=1)
    for attempt in (3, 4, 10, 64, 1100, 10_000):
        waits = [policy.backoff(attempt) for _ in range(50)]
        assert max(waits) <= 3
        assert min(waits) >= 2 if attempt == 3 else min(waits) == 3


def test_zero_backoff_retries_at_once() -> None:
    policy = RetryPolicy(initial_backoff_s=0, max_backoff_s=0)
    assert {policy.backoff(attempt) for attempt in range(1, 6)} == {0}
