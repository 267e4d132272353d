"""Retry topic names: derived from the source topic, the group and the delay, and always legal topic names."""

from __future__ import annotations

import pytest

from neotool_common.policies.retry_topics import delay_label, is_retry_topic, retry_topic, retry_topics


@pytest.mark.parametrize(
    ("delay_ms", "label"),
    [(30_000, "30s"), (300_000, "5m"), (3_600_000, "1h"), (90_000, "90s"), (1_500, "1500ms"), (7_200_000, "2h")],
)
def test_a_delay_is_named_by_its_largest_exact_unit(delay_ms: int, label: str) -> None:
    assert delay_label(delay_ms) == label


def test_a_delay_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        delay_label(0)


def test_the_name_carries_source_group_and_delay() -> None:
    assert retry_topic("people.ingest.v1", "enrichment", 30_000) == "people.ingest.v1.retry.enrichment.30s"
    assert is_retry_topic("people.ingest.v1.retry.enrichment.30s")
    assert not is_retry_topic("people.ingest.v1.dlq")


def test_characters_a_topic_may_not_hold_are_replaced() -> None:
    assert retry_topic("t.v1", "team a/b:c", 1_000) == "t.v1.retry.team_a_b_c.1s"


def test_one_topic_per_tier_in_tier_order() -> None:
    assert retry_topics("t", "g", (1_000, 60_000)) == ("t.retry.g.1s", "t.retry.g.1m")


def test_a_name_past_kafkas_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="249"):
        retry_topic("t" * 240, "group", 1_000)
