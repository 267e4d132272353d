"""Reconciling a batch for a group from plain facts: manifests, committed offsets, DLQ copies."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import pytest

from neotool_common.batches import BatchManifest, BatchState, BatchSummary, DlqFact, PartitionSpan, reconcile
from neotool_common.batches.cluster import latest_manifests
from neotool_common.batches.manifest import runs_of
from neotool_common.batches.render import dlq_command, render_list, render_status
from neotool_common.batches.settings import BatchSettings
from neotool_common.errors import ConfigurationError
from neotool_common.testing.fakes import FakeMessage

BATCH = "0190f3b2-8a1e-7c3d-9f00-000000000001"
TOPIC = "people.v1"
GROUP = "enrich"
HOUR = 3_600_000


def manifest(
    spans: dict[int, list[tuple[int, int]]],
    *,
    part: str = "0",
    expected_parts: int = 1,
    spooled: int = 0,
    lost: int = 0,
    at_ms: int = 0,
) -> BatchManifest:
    return BatchManifest(
        batch_id=BATCH,
        topic=TOPIC,
        part=part,
        expected_parts=expected_parts,
        partitions=tuple(PartitionSpan(p, tuple(runs)) for p, runs in sorted(spans.items())),
        spooled=spooled,
        lost=lost,
        producer="host/1",
        published_at="2026-01-01T00:00:00.000Z",
        published_at_ms=at_ms,
    )


def dlq(partition: int, offset: int, reason: str = "poison", group: str = GROUP, topic: str = TOPIC) -> DlqFact:
    return DlqFact(topic, partition, offset, group, reason)


def summarize(
    parts: list[BatchManifest],
    committed: dict[int, int],
    facts: Sequence[DlqFact] = (),
    *,
    now_ms: int = 1000,
    in_retry: Collection[tuple[int, int]] = (),
) -> BatchSummary:
    return reconcile(parts, GROUP, committed, facts, now_ms=now_ms, overdue_ms=HOUR, in_retry=in_retry)


THREE = manifest({0: [(0, 3)], 1: [(0, 2)], 2: [(5, 7)]})  # 10 records over 3 partitions


def test_nothing_committed_is_all_pending_and_open() -> None:
    summary = summarize([THREE], {})
    assert (summary.state, summary.expected, summary.pending, summary.processed) == (BatchState.OPEN, 10, 10, 0)
    assert summary.holding_back == (0, 1, 2)


def test_committed_past_every_last_offset_is_complete() -> None:
    summary = summarize([THREE], {0: 4, 1: 3, 2: 8})
    assert (summary.state, summary.processed, summary.rejected, summary.pending) == (BatchState.COMPLETE, 10, 0, 0)
    assert summary.adds_up


def test_rejects_are_dlq_copies_of_the_group_by_position_and_count_once() -> None:
    facts = [
        dlq(0, 1, "poison"),
        dlq(0, 1, "poison"),  # a second copy of the same record: a duplicate, not a second reject
        dlq(2, 6, "decode"),  # undecodable: placed by its position, no batch_id needed
        dlq(1, 0, "validation", group="other"),  # another group's copy
        dlq(1, 1, "poison", topic="elsewhere"),
        dlq(2, 4, "poison"),  # before the batch's run on partition 2: another batch's record
    ]
    summary = summarize([THREE], {0: 4, 1: 3, 2: 8}, facts)
    assert summary.state is BatchState.COMPLETE_WITH_REJECTS
    assert (summary.processed, summary.rejected, summary.duplicates) == (8, 2, 1)
    assert summary.rejected_by_reason == {"poison": 1, "decode": 1}
    assert summary.adds_up


def test_a_dlq_copy_past_the_committed_offset_is_pending_not_rejected() -> None:
    # a member wrote the DLQ copy and died before committing: the record comes again
    summary = summarize([THREE], {0: 1, 1: 3, 2: 8}, [dlq(0, 2)])
    assert (summary.rejected, summary.pending, summary.state) == (0, 3, BatchState.OPEN)
    assert summary.holding_back == (0,)


def test_partly_committed_partition_counts_settled_records_below_the_commit() -> None:
    summary = summarize([THREE], {0: 2, 2: 7})
    by_partition = {p.partition: p for p in summary.partitions}
    assert (by_partition[0].settled, by_partition[1].settled, by_partition[2].settled) == (2, 0, 2)
    assert summary.pending == 6


def test_interleaved_runs_count_only_the_batchs_offsets() -> None:
    parts = [manifest({0: [(0, 1), (5, 6)]})]  # offsets 2-4 belong to someone else
    summary = summarize(parts, {0: 4}, [dlq(0, 3)])
    assert (summary.expected, summary.processed, summary.rejected, summary.pending) == (4, 2, 0, 2)


def test_overdue_once_the_deadline_passed_unsettled() -> None:
    summary = summarize([THREE], {0: 4, 1: 3, 2: 7}, now_ms=HOUR + 1)
    assert summary.state is BatchState.OVERDUE
    assert summary.holding_back == (2,)
    assert summarize([THREE], {0: 4, 1: 3, 2: 8}, now_ms=HOUR + 1).state is BatchState.COMPLETE


def test_spooled_and_lost_records_keep_the_batch_open_and_are_pending() -> None:
    summary = summarize([manifest({0: [(0, 3)]}, spooled=2, lost=1)], {0: 4})
    assert (summary.expected, summary.processed, summary.pending) == (7, 4, 3)
    assert (summary.spooled, summary.lost, summary.state) == (2, 1, BatchState.OPEN)


def test_records_in_a_retry_topic_are_pending() -> None:
    summary = summarize([THREE], {0: 4, 1: 3, 2: 8}, in_retry={(1, 2), (9, 9)})
    assert (summary.processed, summary.pending, summary.in_retry, summary.state) == (9, 1, 1, BatchState.OPEN)


def test_a_batch_of_several_parts_is_whole_only_when_every_part_declared() -> None:
    first = manifest({0: [(0, 3)]}, part="a", expected_parts=2, at_ms=5)
    summary = summarize([first], {0: 4})
    assert (summary.state, summary.parts_declared, summary.parts_expected) == (BatchState.OPEN, 1, 2)
    second = manifest({0: [(4, 5)], 1: [(0, 1)]}, part="b", expected_parts=2, at_ms=9)
    summary = summarize([first, second], {0: 6, 1: 2})
    assert (summary.state, summary.expected, summary.processed) == (BatchState.COMPLETE, 8, 8)
    assert summary.age_ms == 1000 - 5  # from the first part


def test_summary_json_carries_the_idempotency_key_and_the_standard_fields() -> None:
    document = summarize([THREE], {0: 4, 1: 3, 2: 8}, [dlq(0, 0)]).as_json()
    assert document["idempotency_key"] == f"{BATCH}/{GROUP}"
    assert (document["batch_id"], document["records_processed"], document["state"]) == (
        BATCH,
        9,
        "complete_with_rejects",
    )


def test_manifest_round_trips_and_runs_merge() -> None:
    assert runs_of([3, 1, 2, 7, 8, 10]) == ((1, 3), (7, 8), (10, 10))
    original = manifest({0: [(0, 3)], 2: [(5, 5), (9, 12)]}, spooled=1)
    decoded = BatchManifest.decode(original.encode())
    assert decoded == original
    assert (decoded.records, decoded.acknowledged, decoded.complete) == (10, 9, False)
    assert decoded.as_json()["partitions"]["2"] == {
        "count": 5,
        "first_offset": 5,
        "last_offset": 12,
        "runs": [[5, 5], [9, 12]],
    }


def test_latest_manifest_per_key_wins_and_tombstones_remove() -> None:
    old = manifest({0: [(0, 1)]}, spooled=1)
    new = manifest({0: [(0, 1), (7, 7)]})
    gone = manifest({1: [(0, 0)]}, part="x")
    key, gone_key = old.key.encode(), gone.key.encode()
    messages = [
        FakeMessage(TOPIC + ".batches", 0, 0, old.encode(), key),
        FakeMessage(TOPIC + ".batches", 0, 1, gone.encode(), gone_key),
        FakeMessage(TOPIC + ".batches", 0, 2, b"not json", b"junk"),
        FakeMessage(TOPIC + ".batches", 0, 3, new.encode(), key),
        FakeMessage(TOPIC + ".batches", 0, 4, None, gone_key),
    ]
    assert latest_manifests(messages) == {BATCH: [new]}


def test_status_table_names_the_holding_partition_and_the_dlq_command() -> None:
    summary = summarize([THREE], {0: 4, 1: 3, 2: 6}, [dlq(0, 0, "validation")])
    text = render_status(summary)
    assert "held back by partition(s) 2" in text
    assert "validation 1" in text
    assert dlq_command(summary) in text
    assert dlq_command(summary) == f"neotool-dlq list {TOPIC}.dlq --batch-id {BATCH}"
    assert BATCH in render_list([summary])


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"BATCH_OVERDUE_MS": "soon"}, "BATCH_OVERDUE_MS"),
        ({"BATCH_ANNOUNCE": "maybe"}, "BATCH_ANNOUNCE"),
        ({"BATCH_WATCH_INTERVAL_MS": "0"}, "BATCH_WATCH_INTERVAL_MS"),
    ],
)
def test_bad_batch_settings_name_their_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        BatchSettings.from_env(env)


def test_batch_settings_defaults_and_class_default_for_announcing() -> None:
    assert BatchSettings.from_env({}) == BatchSettings()
    assert BatchSettings.from_env({}, announce=True).announce
    assert not BatchSettings.from_env({"BATCH_ANNOUNCE": "false"}, announce=True).announce


def test_dlq_filter_by_batch_takes_manifest_positions_and_envelope_batch_ids() -> None:
    from neotool_common.dlqtool.filters import RecordFilter  # noqa: PLC0415 - the DLQ tool's side of batches
    from neotool_common.dlqtool.records import parse_record  # noqa: PLC0415

    def copy(offset: int, value: bytes) -> Any:
        headers = [("dlq.original.topic", TOPIC.encode()), ("dlq.original.partition", b"2")]
        headers.append(("dlq.original.offset", str(offset).encode()))
        return parse_record(FakeMessage(TOPIC + ".dlq", 0, offset, value, None, headers))

    spans = tuple((TOPIC, span) for span in THREE.partitions)
    selection = RecordFilter(batch_ids=frozenset({BATCH}), batch_spans=spans)
    assert selection.matches(copy(6, b"\xff undecodable"))  # by position
    assert not selection.matches(copy(9, b"\xff undecodable"))
    assert selection.matches(copy(9, b'{"batch_id": "%s"}' % BATCH.encode()))  # by envelope (no manifest)
    assert "--batch-id" in selection.to_args()
    assert selection.fingerprint() != RecordFilter().fingerprint()
