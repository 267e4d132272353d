"""Which records of a batch wait in the group's retry topics, over plain values and fakes (docs/batches.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neotool_common.batches import BatchManifest, BatchState, DlqFact, PartitionSpan, reconcile
from neotool_common.batches.retrying import RetryWaiting, retry_position_of, waiting_positions
from neotool_common.policies.retry_topics import group_retry_topics
from neotool_common.testing.fakes import FakeMessage

SOURCE = "people.v1"
GROUP = "enrich"
TIER_1, TIER_2 = f"{SOURCE}.retry.{GROUP}.30s", f"{SOURCE}.retry.{GROUP}.5m"


def copy(topic: str, partition: int, offset: int, source: tuple[int, int] | None) -> FakeMessage:
    headers = [] if source is None else [
        ("retry.original.topic", SOURCE.encode()),
        ("retry.original.partition", str(source[0]).encode()),
        ("retry.original.offset", str(source[1]).encode()),
    ]  # fmt: skip
    return FakeMessage(topic, partition, offset, b"{}", None, headers)


def test_a_copy_names_its_source_position_and_one_without_readable_headers_names_none() -> None:
    assert retry_position_of(copy(TIER_1, 0, 7, (2, 40))) == (2, 40)
    assert retry_position_of(copy(TIER_1, 0, 7, None)) is None
    garbled = FakeMessage(
        TIER_1, 0, 7, b"{}", None, [("retry.original.partition", b"x"), ("retry.original.offset", b"1")]
    )
    assert retry_position_of(garbled) is None


def test_copies_before_the_groups_committed_offset_are_finished_the_others_wait() -> None:
    messages = [copy(TIER_1, 0, 0, (0, 3)), copy(TIER_1, 0, 1, (1, 5)), copy(TIER_1, 1, 0, (2, 9))]
    assert waiting_positions(messages, {0: 1}) == {(1, 5), (2, 9)}  # partition 1: nothing committed, all wait
    assert waiting_positions(messages, {0: 2, 1: 1}) == frozenset()
    twice = [copy(TIER_1, 0, 0, (0, 3)), copy(TIER_1, 0, 1, (0, 3))]  # a tier write repeated after a crash
    assert waiting_positions(twice, {}) == {(0, 3)}


def test_only_the_groups_own_tiers_of_the_source_are_found_shortest_delay_first() -> None:
    topics = [
        TIER_2,
        TIER_1,
        f"{SOURCE}.retry.{GROUP}.x.30s",  # the tier of a group named "enrich.x"
        f"{SOURCE}.retry.other.30s",
        f"{SOURCE}.dlq",
        f"{SOURCE}.v2.retry.{GROUP}.30s",
    ]
    assert group_retry_topics(topics, SOURCE, GROUP) == (TIER_1, TIER_2)
    assert group_retry_topics(topics, SOURCE, "nobody") == ()


reads_and_asks: list[str] = []  # in the order they happen


@dataclass
class Tail:
    messages: list[Any]
    partitions: int = 2
    start: dict[int, int] = field(default_factory=dict)
    closed: bool = False

    def seek(self, start: dict[int, int]) -> None:
        self.start = dict(start)

    def catch_up(self) -> list[Any]:
        reads_and_asks.append(f"read {self.messages[0].topic()}")
        return [m for m in self.messages if m.offset() >= self.start.get(m.partition(), 0)]

    def close(self) -> None:
        self.closed = True


@dataclass
class Cluster:
    tails: dict[str, Tail]
    committed_offsets: dict[str, dict[int, int]]

    def topic_names(self) -> frozenset[str]:
        return frozenset([*self.tails, SOURCE, f"{SOURCE}.retry.other.30s"])

    def tail(self, topic: str) -> Tail | None:
        return self.tails.get(topic)

    def committed(self, group: str, topic: str, partitions: int) -> dict[int, int]:
        assert group == GROUP
        reads_and_asks.append(f"committed {topic}")
        return self.committed_offsets.get(topic, {})


def test_every_tiers_committed_offsets_are_read_before_its_records_and_the_records_from_there() -> None:
    # (0, 4) failed in tier 1 and moved on to tier 2, where it waits; (1, 2) waits in tier 1; (0, 1) was processed
    tier_1 = Tail([copy(TIER_1, 0, 0, (0, 1)), copy(TIER_1, 0, 1, (0, 4)), copy(TIER_1, 1, 0, (1, 2))])
    tier_2 = Tail([copy(TIER_2, 1, 0, (0, 4))])
    cluster = Cluster({TIER_2: tier_2, TIER_1: tier_1}, {TIER_1: {0: 2}})
    waiting = RetryWaiting(cluster, SOURCE, GROUP)  # type: ignore[arg-type]
    reads_and_asks.clear()
    assert waiting.positions() == {(0, 4), (1, 2)}
    # a copy committed past in one tier moved on before that commit: its next copy is read, whichever tier it is in
    assert reads_and_asks == [f"committed {TIER_1}", f"committed {TIER_2}", f"read {TIER_1}", f"read {TIER_2}"]
    cluster.committed_offsets[TIER_2] = {1: 1}
    cluster.committed_offsets[TIER_1] = {0: 2, 1: 1}
    assert waiting.positions() == frozenset()
    waiting.close()
    assert tier_1.closed
    assert tier_2.closed


MANIFEST = BatchManifest(
    "b-1", SOURCE, "0", 1, (PartitionSpan(0, ((0, 2),)), PartitionSpan(1, ((0, 1),))), 0, 0, "h/1",
    "2026-01-01T00:00:00.000Z", 0,
)  # fmt: skip
COMMITTED = {0: 3, 1: 2}  # the source is committed past the whole batch


def test_a_batch_with_a_record_in_a_tier_is_open_with_it_pending_and_in_retry() -> None:
    summary = reconcile([MANIFEST], GROUP, COMMITTED, [], now_ms=1, overdue_ms=10, in_retry={(1, 1), (5, 0)})
    assert (summary.state, summary.pending, summary.in_retry, summary.processed) == (BatchState.OPEN, 1, 1, 4)
    assert summary.holding_back == (1,)
    assert summary.adds_up
    done = reconcile([MANIFEST], GROUP, COMMITTED, [], now_ms=1, overdue_ms=10, in_retry=set())
    assert (done.state, done.processed) == (BatchState.COMPLETE, 5)


def test_a_record_with_a_dlq_copy_is_rejected_even_while_a_replay_of_it_waits_in_a_tier() -> None:
    dlq = [DlqFact(SOURCE, 1, 1, GROUP, "retries_exhausted")]
    summary = reconcile([MANIFEST], GROUP, COMMITTED, dlq, now_ms=1, overdue_ms=10, in_retry={(1, 1)})
    assert (summary.state, summary.rejected, summary.in_retry, summary.pending) == (
        BatchState.COMPLETE_WITH_REJECTS,
        1,
        0,
        0,
    )
