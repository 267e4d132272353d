"""What a replay does with each record, where it resumes, and which offsets it may commit."""

from __future__ import annotations

import json

import pytest

from neotool_common.deadletter.retry_headers import (
    RETRY_ATTEMPTS,
    RETRY_HISTORY,
    RETRY_TIER,
    bounded_history,
    history_entry,
)
from neotool_common.dlqtool.cluster import OffsetRange
from neotool_common.dlqtool.decisions import (
    Action,
    ReplayPolicy,
    decide,
    default_group,
    replayed_headers,
)
from neotool_common.dlqtool.filters import RecordFilter
from neotool_common.dlqtool.ledger import CommitLedger
from neotool_common.dlqtool.planning import scan_range
from neotool_common.dlqtool.targets import ReplayTarget
from neotool_common.errors import ConfigurationError
from neotool_common.policies.retry_topics import first_retry_topic
from tests.dlq_support import Failure, dlq_record

POLICY = ReplayPolicy(dlq_topic="orders.v1.dlq")
EVERYTHING = RecordFilter()


class Catalog:
    def __init__(self, tiers: dict[tuple[str, str], str] | None = None, **partitions: int) -> None:
        self.known = {name.replace("_", "."): count for name, count in partitions.items()}
        self.tiers = tiers or {}  # (source, group) -> the group's tier-1 retry topic
        self.asked: list[str] = []

    def partitions(self, topic: str) -> int | None:
        self.asked.append(topic)
        return self.known.get(topic, 4 if topic in self.tiers.values() else None)

    def retry_topic(self, source: str, group: str) -> str | None:
        return self.tiers.get((source, group))


CATALOG = Catalog(orders_v1=4, other_v1=2)


def test_a_valid_record_goes_back_to_its_original_topic_and_partition() -> None:
    decision = decide(dlq_record("a", Failure(original_partition=3)), EVERYTHING, POLICY, CATALOG)

    assert decision.action is Action.REPLAY
    assert decision.target == ReplayTarget("orders.v1", 3, "orders-job", (("dlq.replay.group", b"orders-job"),))


def test_a_partition_the_target_no_longer_has_leaves_the_choice_to_the_key() -> None:
    decision = decide(dlq_record("a", Failure(original_partition=7)), EVERYTHING, POLICY, CATALOG)

    assert decision.target is not None
    assert (decision.action, decision.target.topic, decision.target.partition) == (Action.REPLAY, "orders.v1", None)


def test_to_sends_every_record_to_that_topic_partitioned_by_key() -> None:
    policy = ReplayPolicy(dlq_topic="orders.v1.dlq", to_topic="other.v1")
    no_origin = dlq_record("a", Failure(original_topic=None))

    for record in (dlq_record("b", Failure(original_partition=1)), no_origin):
        decision = decide(record, EVERYTHING, policy, CATALOG)
        assert decision.target is not None
        assert (decision.action, decision.target.topic, decision.target.partition) == (Action.REPLAY, "other.v1", None)


def test_records_the_filter_does_not_select_are_skipped_without_asking_the_cluster() -> None:
    catalog = Catalog(orders_v1=1)
    decision = decide(dlq_record("a"), RecordFilter(reasons=frozenset({"decode"})), POLICY, catalog)

    assert decision.action is Action.SKIP
    assert catalog.asked == []


def test_a_record_without_an_original_topic_is_reported() -> None:
    decision = decide(dlq_record("a", Failure(original_topic=None)), EVERYTHING, POLICY, CATALOG)

    assert decision.action is Action.REPORT
    assert "no dlq.original.topic header" in decision.why
    assert "pass --to TOPIC" in decision.why


@pytest.mark.parametrize("origin", ["orders.v1.dlq", "payments.v1.dlq", "orders.v1.dlq.parked"])
def test_a_record_that_would_go_into_a_dead_letter_topic_is_reported(origin: str) -> None:
    decision = decide(dlq_record("a", Failure(original_topic=origin)), EVERYTHING, POLICY, Catalog())

    assert decision.action is Action.REPORT
    assert decision.why == f"refusing to replay into dead-letter topic {origin!r}"


def test_a_missing_target_topic_is_reported() -> None:
    decision = decide(dlq_record("a", Failure(original_topic="gone.v1")), EVERYTHING, POLICY, CATALOG)

    assert (decision.action, decision.why) == (Action.REPORT, "target topic 'gone.v1' does not exist")


def test_the_loop_guard_parks_at_max_replays_and_not_before() -> None:
    below = decide(dlq_record("a", Failure(replay_count=2)), EVERYTHING, POLICY, CATALOG)
    at = decide(dlq_record("a", Failure(replay_count=3)), EVERYTHING, POLICY, CATALOG)

    assert below.action is Action.REPLAY
    assert (at.action, at.target) == (Action.PARK, ReplayTarget("orders.v1.dlq.parked"))
    assert at.why == "replayed 3 time(s) already (--max-replays 3)"


def test_the_loop_guard_reports_instead_of_parking_with_no_park() -> None:
    policy = ReplayPolicy(dlq_topic="orders.v1.dlq", max_replays=1, park=False)

    decision = decide(dlq_record("a", Failure(replay_count=1)), EVERYTHING, policy, CATALOG)

    assert decision.action is Action.REPORT
    assert decision.why.endswith("not parked (--no-park)")


def test_replayed_headers_drop_the_failure_and_count_the_replay() -> None:
    record = dlq_record("a", Failure(replay_count=1, own_headers=(("traceparent", b"tp"), ("tenant", None))))

    assert replayed_headers(record, ReplayTarget("orders.v1")) == [
        ("traceparent", b"tp"),
        ("tenant", None),
        ("dlq.replay.count", b"2"),
    ]
    assert replayed_headers(dlq_record("b", Failure(own_headers=())), ReplayTarget("o"))[-1] == (
        "dlq.replay.count",
        b"1",
    )


def test_a_replay_is_for_the_group_that_dead_lettered_the_record_by_default() -> None:
    decision = decide(dlq_record("a", Failure(consumer_group="enrich")), EVERYTHING, POLICY, CATALOG)

    assert decision.target is not None
    assert (decision.target.group, decision.target.audience) == ("enrich", "group enrich")
    assert replayed_headers(decision.record, decision.target)[-2:] == [
        ("dlq.replay.count", b"1"),
        ("dlq.replay.group", b"enrich"),
    ]


def test_to_changes_the_topic_and_keeps_the_group_scope() -> None:
    policy = ReplayPolicy(dlq_topic="orders.v1.dlq", to_topic="other.v1")

    decision = decide(dlq_record("a", Failure(consumer_group="enrich")), EVERYTHING, policy, CATALOG)

    assert decision.target == ReplayTarget("other.v1", None, "enrich", (("dlq.replay.group", b"enrich"),))


@pytest.mark.parametrize(
    ("policy", "failure"),
    [
        (ReplayPolicy(dlq_topic="orders.v1.dlq", all_groups=True), Failure(consumer_group="enrich")),
        (POLICY, Failure(consumer_group=None)),
        (POLICY, Failure(consumer_group="")),
    ],
    ids=["all-groups", "no-group-header", "empty-group-header"],
)
def test_all_groups_or_a_record_naming_no_group_replays_without_a_scope(policy: ReplayPolicy, failure: Failure) -> None:
    decision = decide(dlq_record("a", failure), EVERYTHING, policy, CATALOG)

    assert decision.target is not None
    assert (decision.target.group, decision.target.headers) == (None, ())
    assert decision.target.audience == "every group reading orders.v1"
    assert "dlq.replay.group" not in dict(replayed_headers(decision.record, decision.target))


def test_a_second_replay_sets_count_and_group_anew_instead_of_adding_to_them() -> None:
    """A replayed record that failed again keeps the replay's headers in its DLQ copy; replayed once more, it
    carries one count and one group, whatever the earlier replay had."""
    again = dlq_record("a", Failure(replay_count=1, replay_group="orders-job", own_headers=(("tenant", b"t"),)))
    scoped = decide(again, EVERYTHING, POLICY, CATALOG)
    everyone = decide(again, EVERYTHING, ReplayPolicy(dlq_topic="orders.v1.dlq", all_groups=True), CATALOG)

    assert scoped.target is not None
    assert everyone.target is not None
    assert replayed_headers(again, scoped.target) == [
        ("tenant", b"t"),
        ("dlq.replay.count", b"2"),
        ("dlq.replay.group", b"orders-job"),
    ]
    assert replayed_headers(again, everyone.target) == [("tenant", b"t"), ("dlq.replay.count", b"2")]


def test_all_groups_keeps_its_own_progress_group() -> None:
    everyone = ReplayPolicy(dlq_topic="orders.v1.dlq", all_groups=True)

    assert default_group(EVERYTHING, POLICY) == "neotool-dlq-replay.orders.v1.dlq"
    assert default_group(EVERYTHING, everyone).startswith("neotool-dlq-replay.orders.v1.dlq.f")
    assert default_group(EVERYTHING, everyone) != default_group(
        EVERYTHING, ReplayPolicy(dlq_topic="orders.v1.dlq", to_topic="orders.v1")
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"to_topic": "orders.v1.dlq"}, "--to: refusing to replay into dead-letter topic 'orders.v1.dlq'"),
        ({"to_topic": "x.dlq"}, "--to: refusing to replay into dead-letter topic"),
        ({"to_topic": "orders.v1.dlq.parked"}, "--to: refusing"),
        ({"max_replays": 0}, "--max-replays: must be 1 or more"),
        ({"limit": 0}, "--limit: must be 1 or more"),
        ({"rate": 0.0}, "--rate: must be more than 0"),
    ],
)
def test_impossible_policies_are_configuration_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ReplayPolicy(dlq_topic="orders.v1.dlq", **kwargs)  # type: ignore[arg-type]


def test_default_group_is_per_dlq_and_per_selection_but_not_per_limit() -> None:
    poison = RecordFilter(reasons=frozenset({"poison"}))
    limited = ReplayPolicy(dlq_topic="orders.v1.dlq", limit=10)
    to_other = ReplayPolicy(dlq_topic="orders.v1.dlq", to_topic="other.v1")

    assert default_group(EVERYTHING, POLICY) == "neotool-dlq-replay.orders.v1.dlq"
    assert default_group(EVERYTHING, limited) == default_group(EVERYTHING, POLICY)
    assert default_group(poison, POLICY).startswith("neotool-dlq-replay.orders.v1.dlq.f")
    assert default_group(poison, POLICY) == default_group(RecordFilter(reasons=frozenset({"poison"})), limited)
    assert (
        len({default_group(poison, POLICY), default_group(EVERYTHING, to_other), default_group(poison, to_other)}) == 3
    )


def test_scan_range_starts_at_the_commit_and_ends_at_the_snapshot() -> None:
    snapshot = OffsetRange(10, 50)

    assert scan_range(0, snapshot, None, EVERYTHING, from_beginning=False) == OffsetRange(10, 50)
    assert scan_range(0, snapshot, 30, EVERYTHING, from_beginning=False) == OffsetRange(30, 50)
    assert scan_range(0, snapshot, 30, EVERYTHING, from_beginning=True) == OffsetRange(10, 50)
    assert scan_range(0, snapshot, 5, EVERYTHING, from_beginning=False) == OffsetRange(10, 50)
    assert len(scan_range(0, snapshot, 50, EVERYTHING, from_beginning=False)) == 0


def test_scan_range_narrows_to_the_filters_offsets_and_partitions() -> None:
    snapshot = OffsetRange(10, 50)
    offsets = RecordFilter(offset_from=20, offset_to=29)

    assert scan_range(0, snapshot, None, offsets, from_beginning=False) == OffsetRange(20, 30)
    assert scan_range(0, snapshot, 25, offsets, from_beginning=False) == OffsetRange(25, 30)
    assert len(scan_range(0, snapshot, 31, offsets, from_beginning=False)) == 0
    assert len(scan_range(1, snapshot, None, RecordFilter(partitions=frozenset({0})), from_beginning=False)) == 0


def test_ledger_commits_only_past_settled_records_in_offset_order() -> None:
    ledger = CommitLedger()
    for offset in (5, 6, 7):
        ledger.track(0, offset)
    ledger.track(1, 0)

    ledger.settle(0, 6)
    assert ledger.take_committable() == {}
    assert ledger.in_flight == 3

    ledger.settle(0, 5)
    ledger.settle(1, 0)
    assert ledger.take_committable() == {0: 7, 1: 1}
    assert ledger.take_committable() == {}

    ledger.fail(0, 7)
    ledger.track(0, 8)
    ledger.settle(0, 8)
    assert ledger.take_committable() == {}, "a failed record holds its partition back"


def test_ledger_forgets_a_revoked_partition() -> None:
    ledger = CommitLedger()
    ledger.track(0, 1)
    ledger.track(0, 2)
    ledger.settle(0, 1)

    ledger.forget(0)

    assert ledger.take_committable() == {}
    assert ledger.in_flight == 0
    ledger.settle(0, 2)
    assert ledger.take_committable() == {}


TIER_1 = "orders.v1.retry.enrich.30s"
WITH_TIERS = Catalog({("orders.v1", "enrich"): TIER_1}, orders_v1=4)


def test_a_group_with_retry_tiers_gets_its_replay_through_its_first_tier_due_at_once() -> None:
    record = dlq_record("a", Failure(consumer_group="enrich", reason="retries_exhausted", attempts=5))

    decision = decide(record, EVERYTHING, POLICY, WITH_TIERS)

    assert decision.target is not None
    assert (decision.target.topic, decision.target.partition, decision.target.group) == (TIER_1, 0, "enrich")
    headers = dict(replayed_headers(record, decision.target))
    assert (headers["retry.tier"], headers["retry.due_at"], headers["retry.consumer.group"]) == (b"1", b"0", b"enrich")
    assert (headers["retry.original.topic"], headers["retry.original.offset"]) == (b"orders.v1", b"0")
    (entry,) = json.loads(headers["retry.history"] or b"")
    assert (entry["tier"], entry["attempts"], entry["type"]) == (0, 5, "orders.errors.BadAmount")


def test_a_replay_through_a_tier_carries_the_records_history_once() -> None:
    history = bounded_history([history_entry(t, 2, 1000 * t, "builtins.ConnectionError", "down") for t in range(3)])
    carried = ((RETRY_HISTORY, history), (RETRY_ATTEMPTS, b"6"), (RETRY_TIER, b"2"))
    record = dlq_record("a", Failure(consumer_group="enrich", own_headers=carried))

    decision = decide(record, EVERYTHING, POLICY, WITH_TIERS)

    assert decision.target is not None
    names = [name for name, _ in replayed_headers(record, decision.target)]
    assert len(names) == len(set(names)), "each retry.* header once, however many hops and replays"
    headers = dict(replayed_headers(record, decision.target))
    assert [e["tier"] for e in json.loads(headers["retry.history"] or b"")] == [0, 1, 2]
    assert (headers["retry.attempts"], headers["retry.tier"]) == (b"6", b"1")


@pytest.mark.parametrize(
    "policy",
    [
        ReplayPolicy(dlq_topic="orders.v1.dlq", to_topic="other.v1"),
        ReplayPolicy(dlq_topic="orders.v1.dlq", all_groups=True),
    ],
    ids=["to", "all-groups"],
)
def test_to_and_all_groups_never_go_through_a_retry_topic(policy: ReplayPolicy) -> None:
    decision = decide(dlq_record("a", Failure(consumer_group="enrich")), EVERYTHING, policy, Catalog(
        {("orders.v1", "enrich"): TIER_1, ("other.v1", "enrich"): "other.v1.retry.enrich.30s"}, orders_v1=4, other_v1=2
    ))  # fmt: skip

    assert decision.target is not None
    assert "retry" not in decision.target.topic
    assert not any(name.startswith("retry.") for name, _ in replayed_headers(decision.record, decision.target))


def test_the_first_tier_is_the_groups_retry_topic_with_the_shortest_delay() -> None:
    topics = ["orders.v1.retry.enrich.1h", "orders.v1.retry.enrich.30s", "orders.v1.retry.enrich.5m",
              "orders.v1.retry.enrichment.1s", "orders.v1.retry.enrich.notadelay", "orders.v1.dlq"]  # fmt: skip
    assert first_retry_topic(topics, "orders.v1", "enrich") == "orders.v1.retry.enrich.30s"
    assert first_retry_topic(["orders.v1.retry.enrich.1500ms", "orders.v1.retry.enrich.2s"], "orders.v1", "enrich") == (
        "orders.v1.retry.enrich.1500ms"
    )
    assert first_retry_topic(topics, "orders.v1", "other") is None
