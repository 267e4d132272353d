"""Replay a DLQ: resumable, idempotent per consumer group, bounded by the watermarks seen at start.

How a run goes:

1. Wait (at most one session timeout) until the replay's group has no live member: a run that crashed
   leaves one behind for a few seconds; a run still going is refused (:class:`ConfigurationError`).
2. Snapshot the DLQ's high watermarks, subscribe with the group, and on assignment start each partition at
   the group's committed offset (or its beginning with ``from_beginning``), never past the snapshot.
3. Each record gets a :class:`~neotool_common.dlqtool.decisions.Decision`; copies are produced by an
   idempotent ``acks=all`` producer. Offsets are committed only past records whose fate is settled
   (:class:`~neotool_common.dlqtool.ledger.CommitLedger`), after flushing, every ``max_in_flight``
   records or ``commit_interval_s`` seconds, on revocation, and at the end. A crash re-sends at most the
   records produced since the last commit; a second run of a finished replay sends nothing.
4. ``stop`` (set by Ctrl+C) ends the run after the in-flight records are acknowledged and committed. An
   exception (a second Ctrl+C's ``KeyboardInterrupt`` included) commits what is settled and waits for nothing.

Blocks on the network throughout. Raises :class:`ConfigurationError` when the cluster cannot be reached
or the group cannot be joined; delivery and commit failures end the run and are in the report.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from neotool_common.consumer.flow import PartitionFlow, PauseReason
from neotool_common.dlqtool.cluster import DlqCluster, OffsetRange, TopicInfo, wait_for_free_group
from neotool_common.dlqtool.decisions import Action, Decision, ReplayPolicy, decide, replayed_headers
from neotool_common.dlqtool.filters import RecordFilter
from neotool_common.dlqtool.ledger import CommitLedger
from neotool_common.dlqtool.pacing import NoProgress, Pacer, Progress
from neotool_common.dlqtool.planning import TopicCatalog, scan_range
from neotool_common.dlqtool.records import parse_record
from neotool_common.dlqtool.replay_report import ReplayReport, ReplayTuning
from neotool_common.errors import ConfigurationError

__all__ = ["Replay", "ReplayReport", "ReplayTuning"]


class Replay:
    """One replay run; :meth:`run` blocks until done, stopped, or failed, and returns the report."""

    def __init__(
        self,
        cluster: DlqCluster,
        dlq: TopicInfo,
        record_filter: RecordFilter,
        policy: ReplayPolicy,
        group: str,
        *,
        from_beginning: bool = False,
        stop: threading.Event | None = None,
        progress: Progress | None = None,
        say: Callable[[str], None] = lambda line: None,
        on_ack: Callable[[int], None] | None = None,
        tuning: ReplayTuning | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cluster = cluster
        self._dlq = dlq
        self._filter = record_filter
        self._policy = policy
        self._from_beginning = from_beginning
        self._stop = stop or threading.Event()
        self._progress = progress or NoProgress()
        self._say = say
        self._on_ack = on_ack
        self._tuning = tuning or ReplayTuning()
        self._clock = clock
        self._pacer = Pacer(policy.rate, clock, self._stop.wait)
        self._catalog = TopicCatalog(cluster)
        self._ledger = CommitLedger()
        self.report = ReplayReport(group)
        self._snapshot: Mapping[int, OffsetRange] = {}
        self._active: dict[int, OffsetRange] = {}
        self._started: set[int] = set()
        self._assigned = False
        self._selected = 0
        self._acked = 0
        self._since_commit = 0
        self._committed_at = clock()
        self._quitting = False
        self._consumer: Any = None
        self._flow: PartitionFlow | None = None
        self._producer: Any = None

    def run(self) -> ReplayReport:
        wait_for_free_group(
            self._cluster, self.report.group, self._tuning.session_timeout_ms, self._stop, self._say, self._clock
        )
        if self._stop.is_set():
            self.report.interrupted = True
            return self.report
        self._consumer = self._cluster.group_consumer(self.report.group, self._tuning.session_timeout_ms)
        self._flow = PartitionFlow(self._consumer)
        self._producer = self._cluster.producer()
        try:
            self._snapshot = self._cluster.watermarks(self._consumer, self._dlq)
            self._consumer.subscribe([self._dlq.name], on_assign=self._on_assign, on_revoke=self._on_revoke)
            self._loop()
            self._checkpoint()
            # the last acknowledgements came during the checkpoint's flush: the bar ends on the summary's count
            self._progress.update(self.report.scanned, self.report.total, self.report.replayed)
        except BaseException:
            # An error, or a second Ctrl+C: keep the progress already settled, wait for nothing in flight.
            self._quitting = True
            self._commit_settled()
            raise
        finally:
            self._consumer.close()
            self._progress.close()
        return self.report

    # -- the loop ----------------------------------------------------------------------------------

    def _loop(self) -> None:
        join_deadline = self._clock() + self._tuning.join_timeout_s
        while not self._finished():
            if self._stop.is_set():
                self.report.interrupted = True
                return
            if not self._assigned and self._clock() > join_deadline:
                raise ConfigurationError(
                    "--group",
                    f"no partitions assigned in consumer group {self.report.group!r} within "
                    f"{self._tuning.join_timeout_s:g}s",
                )
            for message in self._consumer.consume(num_messages=100, timeout=0.2):
                self._handle(message)
                self._maybe_checkpoint()
                if self._finished() or self._stop.is_set():
                    break
            self._producer.poll(0)
            self._maybe_checkpoint()

    def _finished(self) -> bool:
        return (self._assigned and not self._active) or self.report.limit_reached or self._aborted()

    def _aborted(self) -> bool:
        return bool(self.report.failed or self.report.commit_error)

    def _handle(self, message: Any) -> None:
        partition = message.partition()
        scan = self._active.get(partition)
        if scan is None:
            return
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                raise ConfigurationError(self._dlq.name, f"cannot read partition {partition}: {error.str()}")
            self._finish(partition)
            return
        if message.offset() >= scan.end:
            self._finish(partition)
            return
        self._apply(decide(parse_record(message), self._filter, self._policy, self._catalog))
        self.report.scanned += 1
        if message.offset() >= scan.end - 1:
            self._finish(partition)
        self._progress.update(self.report.scanned, self.report.total, self.report.replayed)

    def _apply(self, decision: Decision) -> None:
        record = decision.record
        self._ledger.track(record.partition, record.offset)
        if decision.action is Action.SKIP:
            self.report.skipped += 1
            self._ledger.settle(record.partition, record.offset)
            return
        self._selected += 1
        if self._policy.limit is not None and self._selected >= self._policy.limit:
            self.report.limit_reached = True
        if decision.action is Action.REPORT:
            self.report.reported.append(decision)
            self._ledger.settle(record.partition, record.offset)
        elif self._pacer.wait_turn():
            self._produce(decision)
        else:
            self.report.interrupted = True  # stays unsettled: the commit stops before it

    def _finish(self, partition: int) -> None:
        if self._active.pop(partition, None) is not None:
            assert self._flow is not None
            self._flow.pause((self._dlq.name, partition), PauseReason.REPLAY_DONE)

    # -- producing ---------------------------------------------------------------------------------

    def _produce(self, decision: Decision) -> None:
        record, target = decision.record, decision.target
        assert target is not None, "a REPLAY or PARK decision always names its target"
        if decision.action is Action.PARK:
            topic = self._parking()
            partition = record.partition if record.partition < (self._catalog.partitions(topic) or 0) else None
            headers = list(record.headers)
        else:
            topic, partition, headers = target.topic, target.partition, replayed_headers(record, target)
        produce: dict[str, Any] = {"key": record.key, "value": record.value, "headers": headers}
        if partition is not None:
            produce["partition"] = partition
        on_delivery = functools.partial(self._delivered, decision)
        while True:
            try:
                self._producer.produce(topic, on_delivery=on_delivery, **produce)
                break
            except BufferError:
                self._producer.poll(0.1)
        self._producer.poll(0)
        self._since_commit += 1

    def _parking(self) -> str:
        parked = self._policy.parked_topic
        if self._catalog.partitions(parked) is None:
            self._catalog.remember(self._cluster.create_topic(self._dlq, parked))
            self.report.created_topic = parked
            self._say(f"created topic {parked} ({self._dlq.partitions} partition(s)) for parked records")
        return parked

    def _delivered(self, decision: Decision, error: KafkaError | None, _message: Any) -> None:
        record = decision.record
        if error is not None:
            self._ledger.fail(record.partition, record.offset)
            self.report.failed.append((decision, error.str()))
            return
        self._ledger.settle(record.partition, record.offset)
        if decision.action is Action.PARK:
            self.report.parked.append(decision)
        else:
            self.report.count_replayed(decision)
        self._acked += 1
        if self._on_ack is not None:
            self._on_ack(self._acked)

    # -- committing --------------------------------------------------------------------------------

    def _maybe_checkpoint(self) -> None:
        due = self._clock() - self._committed_at >= self._tuning.commit_interval_s
        if self._since_commit >= self._tuning.max_in_flight or due:
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Wait for every produced copy to be acknowledged, then commit past the settled records."""
        while self._producer.flush(0.5) > 0:
            pass
        self._commit_settled()

    def _commit_settled(self) -> None:
        offsets = self._ledger.take_committable()
        self._since_commit = 0
        self._committed_at = self._clock()
        if not offsets or self.report.commit_error:
            return
        try:
            self._consumer.commit(
                offsets=[TopicPartition(self._dlq.name, p, o) for p, o in offsets.items()], asynchronous=False
            )
        except KafkaException as error:
            self.report.commit_error = error.args[0].str()

    # -- group membership --------------------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=self._cluster.timeout_s)}
        assign = []
        for tp in partitions:
            snapshot = self._snapshot.get(tp.partition)
            if snapshot is None:
                continue  # created after the run started: not part of this replay
            rewind = self._from_beginning and tp.partition not in self._started
            offset = committed.get(tp.partition, -1)
            scan = scan_range(tp.partition, snapshot, offset if offset >= 0 else None, self._filter, rewind)
            if tp.partition not in self._started:
                self.report.total += len(scan)
                self._started.add(tp.partition)
            if len(scan) > 0:
                self._active[tp.partition] = scan
                assign.append(TopicPartition(self._dlq.name, tp.partition, scan.start))
        if self._cluster.group_rebalances_incrementally:
            consumer.incremental_assign(assign)  # adds to what the member has: consumer protocol, cooperative
        else:
            consumer.assign(assign)
        assert self._flow is not None
        self._flow.assigned(assign)  # a partition finished and paused before a rebalance is read again
        # An incremental rebalance can start with an empty assignment (the partitions still owned elsewhere):
        # the replay has not started until some partition came its way.
        self._assigned = self._assigned or bool(partitions)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        if self._quitting:
            self._commit_settled()
        else:
            self._checkpoint()
        for tp in partitions:
            self._active.pop(tp.partition, None)
            self._ledger.forget(tp.partition)
        if self._flow is not None:
            self._flow.released(partitions)
