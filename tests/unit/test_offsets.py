"""PartitionOffsets: the committable position when records complete out of order, and the held-back window."""

from __future__ import annotations

from collections import deque

from neotool_common.consumer.offsets import PartitionOffsets


def test_nothing_is_committable_before_a_record_completes() -> None:
    offsets = PartitionOffsets()
    assert offsets.committable() is None
    offsets.begin(0)
    assert offsets.committable() == 0, "a pending first record holds the position at itself"


def test_in_order_completion_commits_the_next_offset_to_read() -> None:
    offsets = PartitionOffsets()
    for offset in range(5, 9):
        offsets.done(offset)
        assert offsets.committable() == offset + 1
    assert offsets.highest_done == 8


def test_a_pending_record_holds_the_position_while_later_records_complete() -> None:
    offsets = PartitionOffsets()
    offsets.done(0)
    offsets.begin(1)  # a dead-letter write in flight
    for offset in range(2, 6):
        offsets.done(offset)
    assert offsets.committable() == 1
    assert offsets.is_pending(1)
    offsets.finish(1)
    assert not offsets.is_pending(1)
    assert offsets.committable() == 6


def test_out_of_order_finishes_release_the_position_only_up_to_the_lowest_pending() -> None:
    offsets = PartitionOffsets()
    for offset in (10, 11, 12):
        offsets.begin(offset)
    offsets.finish(12)
    assert offsets.committable() == 10
    offsets.finish(10)
    assert offsets.committable() == 11
    assert offsets.pending == 1
    offsets.finish(11)
    assert offsets.committable() == 13
    assert offsets.pending == 0


def test_a_late_finish_does_not_move_the_position_backwards() -> None:
    offsets = PartitionOffsets()
    offsets.begin(3)
    offsets.done(4)
    offsets.done(5)
    offsets.finish(3)
    assert offsets.committable() == 6
    assert offsets.highest_done == 5


def test_held_counts_the_records_behind_the_lowest_pending_one() -> None:
    offsets = PartitionOffsets()
    assert offsets.held() == 0
    offsets.done(0)
    assert offsets.held() == 0, "nothing is held without a pending record"
    offsets.begin(1)
    assert offsets.held() == 0, "the pending record itself holds nothing yet"
    for offset in range(2, 10):
        offsets.done(offset)
    assert offsets.held() == 8
    offsets.finish(1)
    assert offsets.held() == 0


def test_held_stays_at_what_is_behind_the_oldest_write_when_writes_overlap_without_end() -> None:
    """A poison record every 100, each write acknowledged after the next two went out: something is always pending.

    ``held()`` once kept counting every record completed while anything was pending and only started again
    from 0 when nothing was: at 1% poison it passed ``MAX_PENDING_PER_PARTITION`` (10,000) every few seconds,
    and the partition paused with a handful of writes out (the poison benchmark ran at a fifth of clean).
    """
    offsets = PartitionOffsets()
    out: deque[int] = deque()
    worst = 0
    for offset in range(50_000):
        if offset % 100 == 0:
            offsets.begin(offset)
            out.append(offset)
            if len(out) > 2:
                offsets.finish(out.popleft())
        else:
            offsets.done(offset)
        worst = max(worst, offsets.held())
    assert offsets.pending == 2
    assert worst == 199, "at most two writes' worth of records behind the oldest one still out"
    assert offsets.held() == len(range(out[0] + 1, 50_000))


def test_a_record_begun_again_while_pending_keeps_its_place_behind_which_the_others_are_held() -> None:
    """The throughput modes begin a record when a worker takes it, and again when it is dead-lettered."""
    offsets = PartitionOffsets()
    offsets.begin(0)
    for offset in range(1, 101):
        offsets.begin(offset)
        offsets.finish(offset)
    offsets.begin(0)  # its dead-letter write
    assert offsets.held() == 100, "the hundred records completed behind it are still held"
    assert offsets.committable() == 0
    offsets.finish(0)
    assert (offsets.held(), offsets.committable()) == (0, 101)


def test_held_counts_records_not_offsets_across_gaps() -> None:
    offsets = PartitionOffsets()
    offsets.begin(10)
    offsets.done(500)  # compaction, or transaction markers, left offsets 11-499 empty
    offsets.begin(900)
    assert offsets.held() == 2
    offsets.finish(900)
    assert offsets.held() == 2, "500 and 900 still wait behind 10"
    offsets.finish(10)
    assert offsets.held() == 0


def test_a_settled_partition_commits_the_position_past_transaction_markers() -> None:
    offsets = PartitionOffsets()
    offsets.done(29)
    assert offsets.committable(position=31) == 31, "offset 30 is a commit marker: no record to wait for"
    assert offsets.committable() == 30
    assert offsets.committable(position=-1001) == 30, "an unknown position changes nothing"
    offsets.begin(31)
    assert offsets.committable(position=40) == 31, "never past a pending record"


def test_committed_starts_unknown_and_is_only_set_by_the_runner() -> None:
    offsets = PartitionOffsets()
    offsets.done(7)
    assert offsets.committed == -1
    offsets.committed = 8
    assert offsets.committable() == 8
