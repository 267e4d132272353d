"""The nemesis invariants: safety from P, A, O and D; liveness from the brokers and the survivors' /metrics.

Every record is known by its position ``(topic, partition, offset)``. P: acknowledged by the idempotent
producer or in a committed transaction; A: in an aborted transaction; O: positions the ledger saw processed;
D: the source positions named by the DLQ copies (``dlq.original.*``).

Safety
    * nothing lost: P - (O | D) is empty;
    * nothing in D the workload did not make fail: a record planned to be processed may be in D only with
      ``retries_exhausted`` and only if it failed during a downstream outage of the schedule (the ledger's
      ``attempt_failed`` events with detail ``outage``); every other DLQ copy has the reason its kind implies;
    * no poison (nor invalid, nor undecodable) record in O, and nothing of A in O or D;
    * per key, first processings follow the offsets (every mode here promises key order); per partition too
      where the mode promises partition order (sequential, process_batch); records a handler handed to the
      DLQ are left out of the chains (see :func:`_judge_order`);
    * on the idempotent topic (no gaps in its offsets), no commit of c before every offset below c completed;
    * duplicates (processings beyond the first) within the hand-over windows (:func:`soak.invariants.handoff_windows`):
      what a member processed in a tenure of a partition that none of the tenure's accepted commits covered
      when it gave the partition up (revoked, lost) or stopped writing (killed, or still running at the end),
      plus what it completed after giving it up: records inside the handler at the hand-over, at most
      ``in_flight_limit`` per hand-over (the mode's handler concurrency; more is a runner defect); extra DLQ
      copies likewise, plus every failed DLQ write (a write reported failed may have been stored, and is sent
      again).

Liveness (after the last fault is over, within ``drain_s``)
    * every partition's committed offset equals its end offset (transaction markers included);
    * every surviving member's lag gauges read 0 and no ``neotool_consumer_partition_paused`` series is 1;
    * every survivor exits 0 on SIGTERM; each member a fault ended exited with that fault's code.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from neotool_common.deadletter.headers import (
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_REASON,
)
from neotool_common.testing.harness import ReadRecord
from soak.invariants import _commits_past_incomplete_work, handoff_windows
from soak.ledger import Event, EventKind, Ledger
from soak.nemesis.tier_order import judge_tier_key_order, source_position
from soak.nemesis.workload import PROCESS, Position, Traffic

__all__ = ["Findings", "judge_safety"]


@dataclass
class Findings:
    records: int = 0
    processed: int = 0
    dead: int = 0
    lost: int = 0
    duplicates: int = 0
    duplicate_bound: int = 0
    in_flight: int = 0  # of the bound: completions after a hand-over (records inside the handler then)
    dlq_copies: int = 0
    dlq_copy_bound: int = 0
    tier_hops: int = 0  # acknowledged tier writes (moves on and followers)
    key_order_pairs: str = ""  # with tiers: pairs the key-order guarantee covered, and those excused
    violations: list[str] = field(default_factory=list)

    def add(self, problem: str) -> None:
        self.violations.append(problem)


def _first_by_partition(positions: Iterable[Position]) -> str:
    """``topic[p]@first offset (n)`` for each partition among ``positions``: where an invariant broke first."""
    grouped: dict[tuple[str, int], list[int]] = defaultdict(list)
    for topic, partition, offset in positions:
        grouped[(topic, partition)].append(offset)
    return ", ".join(f"{t}[{p}]@{min(o)} ({len(o)})" for (t, p), o in sorted(grouped.items()))


def _position(event: Event) -> Position:
    if event.topic is None or event.partition is None or event.offset is None:
        raise AssertionError(f"ledger event {event.seq} without a position")
    return (event.topic, event.partition, event.offset)


def _dlq_position(record: ReadRecord) -> Position | None:
    topic, partition, offset = (
        record.header(h) for h in (DLQ_ORIGINAL_TOPIC, DLQ_ORIGINAL_PARTITION, DLQ_ORIGINAL_OFFSET)
    )
    if topic is None or partition is None or offset is None:
        return None
    return (topic, int(partition), int(offset))


def _deliveries(ledger: Ledger, topics: list[str], tiers: list[str]) -> Counter[Position]:
    """Processings per source position (those read from a retry tier count for their source record)."""
    deliveries: Counter[Position] = Counter()
    for event in ledger.events(EventKind.PROCESSED):
        if event.topic in topics or event.topic in tiers:
            deliveries[source_position(event, set(tiers)) or _position(event)] += 1
    return deliveries


def judge_safety(
    traffic: Traffic,
    ledger: Ledger,
    dead_letters: list[ReadRecord],
    topics: list[str],
    *,
    partition_order: bool,
    in_flight_limit: int,
    tiers: list[str] | None = None,
) -> Findings:
    """``tiers``: the group's retry topics; a processing read from one counts for its source record, and key
    order is judged as the key-order option guarantees it (:mod:`soak.nemesis.tier_order`)."""
    tiers = tiers or []
    found = Findings(records=len(traffic.acked))
    deliveries = _deliveries(ledger, topics, tiers)
    dead: Counter[Position] = Counter()
    reasons: dict[Position, set[str]] = defaultdict(set)
    for record in dead_letters:
        position = _dlq_position(record)
        if position is None:
            found.add(f"a DLQ copy without its source position: key {record.key!r}")
            continue
        dead[position] += 1
        reasons[position].add(record.header(DLQ_REASON) or "")
    outage_failed = {
        (e.topic, e.partition, e.offset)
        for e in ledger.events(EventKind.ATTEMPT_FAILED)
        if e.detail == "outage" and e.topic in topics
    }
    found.processed, found.dead = len(deliveries), len(dead)

    lost = [p for p in traffic.acked if p not in deliveries and p not in dead]
    found.lost = len(lost)
    if lost:
        found.add(f"lost (in P, neither processed nor dead-lettered): {_first_by_partition(lost)}")
    must_fail = [p for p in deliveries if p in traffic.acked and traffic.acked[p].expect != PROCESS]
    if must_fail:
        found.add(f"records that must fail were processed: {_first_by_partition(must_fail)}")
    aborted = [p for p in list(deliveries) + list(dead) if p in traffic.aborted]
    if aborted:
        found.add(f"records of aborted transactions processed or dead-lettered: {_first_by_partition(aborted)}")
    _judge_dead_letters(found, traffic, reasons, outage_failed)
    if tiers:
        _judge_tiers(found, ledger, traffic, topics, tiers)
    else:
        _judge_order(found, ledger, traffic, topics, partition_order)
    found.violations += _commits_past_incomplete_work(ledger, topics[0])

    _judge_duplicates(found, ledger, topics + tiers, deliveries, dead, in_flight_limit, tiers=bool(tiers))
    return found


def _judge_tiers(found: Findings, ledger: Ledger, traffic: Traffic, topics: list[str], tiers: list[str]) -> None:
    """Key order through the tiers (:func:`judge_tier_key_order`)."""
    order = judge_tier_key_order(ledger, traffic, topics, tiers)
    found.key_order_pairs = (
        f"{order.pairs} held, {order.excused} out of order across assignment changes "
        f"({order.excused_tier_moves} of them with the source partition staying put)"
    )
    found.violations += order.violations[:10]
    found.tier_hops = ledger.count(EventKind.TIER_ACKED)


def _tier_writes(ledger: Ledger) -> list[Event]:
    """Each retry-tier write as a completion at the position its record was read from (its ``detail`` says
    where): one no accepted commit covered is redone by the next owner, written again or processed at once.
    Resends of a failed write are left out (each failed write counts once more on its own)."""
    writes, failed = [], set()
    for event in ledger.events(EventKind.TIER_SENT, EventKind.TIER_FAILED):
        destination, _, read = (event.detail or "").partition(" from ")
        copy = (event.member, event.topic, event.partition, event.offset, destination.split(":")[0])
        if event.kind == EventKind.TIER_FAILED or copy in failed:  # a resend: counted with the failed writes
            failed.add(copy)
            continue
        topic, partition, offset = read.rsplit(":", 2)
        writes.append(dataclasses.replace(event, kind=EventKind.PROCESSED, topic=topic, partition=int(partition),
                                          offset=int(offset)))  # fmt: skip
    return writes


def _judge_duplicates(
    found: Findings,
    ledger: Ledger,
    topics: list[str],
    deliveries: Counter[Position],
    dead: Counter[Position],
    in_flight_limit: int,
    *,
    tiers: bool = False,
) -> None:
    """``tiers``: the tier writes count in the windows of the partitions their records were read from (redone,
    each is one more processing or DLQ copy), and each tier write reported failed (it may have been stored, and
    is sent again) once more."""
    found.duplicates = sum(n - 1 for n in deliveries.values())
    found.dlq_copies = sum(n - 1 for n in dead.values())
    writes = _tier_writes(ledger) if tiers else []
    windows = {topic: handoff_windows(ledger, topic, writes) for topic in topics}
    failed = ledger.count(EventKind.TIER_FAILED)
    tier_slack = sum(w.bound for w in windows.values()) - sum(handoff_windows(ledger, t).bound for t in topics)
    found.duplicate_bound = sum(w.bound for w in windows.values()) + failed
    found.in_flight = sum(sum(w.in_flight.values()) for w in windows.values())
    found.dlq_copy_bound = (
        sum(w.dead_letters for w in windows.values()) + ledger.count(EventKind.DLQ_FAILED) + failed + tier_slack
    )
    for topic, window in windows.items():
        for (member, partition, seq), late in sorted(window.in_flight.items()):
            if late > in_flight_limit:
                found.add(
                    f"{member} completed {late} records of {topic}[{partition}] after handing it over (ledger seq "
                    f"{seq}): more than the {in_flight_limit} its mode has inside the handler at once"
                )
    if found.duplicates > found.duplicate_bound:
        dup = [p for p, n in deliveries.items() if n > 1]
        found.add(
            f"{found.duplicates} duplicate processings, bound {found.duplicate_bound} (hand-over windows, "
            f"{found.in_flight} of them in flight at a hand-over): {_first_by_partition(dup)}"
        )
    if found.dlq_copies > found.dlq_copy_bound:
        found.add(f"{found.dlq_copies} extra DLQ copies, bound {found.dlq_copy_bound}")


def _judge_dead_letters(
    found: Findings, traffic: Traffic, reasons: dict[Position, set[str]], outage_failed: set[Position]
) -> None:
    unexpected, wrong_reason = [], []
    for position, got in reasons.items():
        record = traffic.acked.get(position)
        if record is None:
            continue  # not in P (refused by the broker, yet maybe stored; or aborted, judged above)
        if record.expect == PROCESS and position not in outage_failed:
            unexpected.append(position)
        elif got != {"retries_exhausted" if record.expect == PROCESS else record.expect}:
            wrong_reason.append(position)
    if unexpected:
        found.add(f"dead-lettered though the workload did not make it fail: {_first_by_partition(unexpected)}")
    if wrong_reason:
        found.add(f"DLQ copies with the wrong dlq.reason: {_first_by_partition(wrong_reason)}")


def _judge_order(found: Findings, ledger: Ledger, traffic: Traffic, topics: list[str], partition_order: bool) -> None:
    """First processings: per key always, per partition where the mode promises it, in offset order.

    Records handed to the DLQ are left out: once a handler gave one up, its chain goes on while the dead-letter
    write is pending (the commit waits, not the chain), and if that member's commit then fails, the next owner
    processes it again after the later records were processed. Everything processed and never dead-lettered
    is in the chains.
    """
    key_of = {record.record_id: record.key for record in traffic.acked.values()}
    dead = {_position(e) for e in ledger.events(EventKind.DLQ_SENT) if e.topic in topics}
    seen: set[Position] = set()
    last: dict[tuple[str, str, object], int] = {}
    for event in ledger.events(EventKind.PROCESSED):
        if event.topic not in topics:
            continue
        position = _position(event)
        assert event.offset is not None
        if position in seen or position in dead:
            continue
        seen.add(position)
        key = key_of.get(event.record_id or "")
        chains: list[tuple[str, str, object]] = [("key", event.topic, key)]
        if partition_order:
            chains.append(("partition", event.topic, event.partition))
        for chain in chains:
            if event.offset < last.get(chain, -1):
                found.add(
                    f"{chain[0]} order: {event.topic}[{event.partition}]@{event.offset} first processed after "
                    f"offset {last[chain]} of the same {chain[0]} {chain[2]} (by {event.member}, seq {event.seq})"
                )
            last[chain] = max(last.get(chain, -1), event.offset)
