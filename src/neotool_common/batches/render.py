"""How ``neotool-batch`` shows a batch to a person: a short table, and the command that lists its rejects."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from neotool_common.batches.summary import BatchSummary
from neotool_common.deadletter.headers import dlq_topic_for

__all__ = ["dlq_command", "render_list", "render_status"]


def dlq_command(summary: BatchSummary) -> str:
    """The ``neotool-dlq list`` line that shows this batch's rejected records."""
    return shlex.join(["neotool-dlq", "list", dlq_topic_for(summary.topic), "--batch-id", summary.batch_id])


def render_status(summary: BatchSummary) -> str:
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(summary.rejected_by_reason.items()))
    pending_detail = [
        f"{label} {count}"
        for label, count in (("in retry", summary.in_retry), ("spooled", summary.spooled), ("lost", summary.lost))
        if count
    ]
    lines = [
        f"batch {summary.batch_id}  topic {summary.topic}  group {summary.group}",
        f"  state       {summary.state.value}",
        f"  parts       {summary.parts_declared} of {summary.parts_expected}",
        f"  expected    {summary.expected}",
        f"  processed   {summary.processed}",
        f"  rejected    {summary.rejected}" + (f"  ({reasons})" if reasons else ""),
        f"  pending     {summary.pending}" + (f"  ({', '.join(pending_detail)})" if pending_detail else ""),
        f"  duplicates  {summary.duplicates}  (extra DLQ copies of a record)",
        f"  published   {summary.published_at}",
        "  partition  records  first  last  committed  settled  pending",
    ]
    lines += [
        f"  {p.partition:>9}  {p.records:>7}  {p.first_offset:>5}  {p.last_offset:>4}  "
        f"{'-' if p.committed is None else p.committed:>9}  {p.settled:>7}  {p.pending:>7}"
        for p in summary.partitions
    ]
    if summary.holding_back:
        lines.append(f"  held back by partition(s) {', '.join(map(str, summary.holding_back))}")
    if summary.rejected:
        lines.append(f"  rejected records: {dlq_command(summary)}")
    return "\n".join(lines)


def render_list(summaries: Sequence[BatchSummary]) -> str:
    header = f"{'batch_id':<36}  {'state':<21}  {'expected':>8}  {'processed':>9}  {'rejected':>8}  {'pending':>7}"
    rows = [
        f"{s.batch_id:<36}  {s.state.value:<21}  {s.expected:>8}  {s.processed:>9}  {s.rejected:>8}  {s.pending:>7}"
        for s in summaries
    ]
    return "\n".join([header, *rows])
