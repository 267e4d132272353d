"""Offset commits: what each partition may commit, when, and what the coordinator acknowledged.

* Asynchronous and amortised while running (:class:`~neotool_common.policies.commit.CommitPolicy`);
  synchronous on revoke and at shutdown; never for partitions reported lost.
* A partition whose every delivered record completed commits the client's position, which is past
  transaction markers and aborted batches; otherwise the lowest incomplete offset (:mod:`.offsets`).
* An asynchronous commit is sent once per offset; a synchronous one is sent unless the coordinator already
  *acknowledged* that offset: an asynchronous commit still in flight may yet fail (a rebalance in progress).
* An acknowledgement of an offset below one already acknowledged means the coordinator applied an older commit
  last (commits sent again while it moved): the partition counts as committed there, and commits again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from neotool_common.consumer.context import Key, RunContext
from neotool_common.consumer.partition import PartitionState

__all__ = ["Commits"]


class Commits:
    def __init__(
        self,
        ctx: RunContext,
        consumer: Any,
        settled: Callable[[PartitionState], bool],
        on_fatal: Callable[[KafkaError], None],
        on_acknowledged: Callable[[str, int, int], None],
    ) -> None:
        self._ctx = ctx
        self._consumer = consumer
        self._settled = settled  # every record delivered for the partition completed: its position is safe
        self._on_fatal = on_fatal
        self._on_acknowledged = on_acknowledged  # the lag monitor's committed offsets
        self._last = ctx.clock.monotonic()

    def maybe_commit(self, now: float) -> None:
        """Commit asynchronously when the policy says it is time, or when only a position moved.

        A settled partition's position can pass a transaction marker after the commit of its last record
        (the client reads the marker later): with no record completing any more, that position would wait for
        the next revoke, and the lag would never reach 0. So once an interval has passed without completions,
        the positions are looked at (a local call) and committed if they moved.
        """
        tally = self._ctx.tally
        policy = self._ctx.settings.commit
        elapsed = now - self._last
        if policy.due(tally.since_commit, elapsed) or elapsed >= policy.interval_s:
            self._last = now
            tally.since_commit = 0
            self.commit(asynchronous=True)

    def commit(self, *, asynchronous: bool, states: Iterable[PartitionState] | None = None) -> None:
        states = list(self._ctx.partitions.values() if states is None else states)
        positions = self._positions(states)
        offsets = []
        for state in states:
            position = state.offsets.committable(positions.get(state.key))
            if position is None:
                continue
            already = state.commit_sent if asynchronous else state.offsets.committed
            if position > already:
                offsets.append(TopicPartition(state.topic, state.partition, position))
                state.commit_sent = position
                self._observe(state)
        if not offsets:
            return
        try:
            result = self._consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            self._failed(offsets, str(error or exc), error if isinstance(error, KafkaError) else None)
            return
        if not asynchronous:  # the callback may not hear of a synchronous commit: record what it returned
            self._record(tp for tp in result or () if tp.error is None)

    def _positions(self, states: Sequence[PartitionState]) -> dict[Key, int]:
        """The client's positions of the partitions whose every delivered record completed.

        Only partitions that completed a record in this assignment: the client's position is the offset after
        the last record it delivered, and until it delivers one again a partition assigned back may still show
        where an earlier assignment stopped.
        """
        settled = [
            state.tp
            for state in states
            if not state.offsets.pending and state.offsets.highest_done >= 0 and self._settled(state)
        ]
        if not settled:
            return {}
        try:
            return {(tp.topic, tp.partition): tp.offset for tp in self._consumer.position(settled)}
        except KafkaException:
            return {}

    def _observe(self, state: PartitionState) -> None:
        if state.last_ingested_at is not None:
            age = self._ctx.clock.time() - state.last_ingested_at.timestamp()
            state.metrics.end_to_end_age.observe(max(0.0, age))

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """The client's commit callback (asynchronous commits; runs inside ``consume()``)."""
        failed = [tp for tp in partitions if tp.error is not None]
        if err is not None or failed:
            error = err or failed[0].error
            self._failed(failed or partitions, str(error), error)
            return
        self._acknowledged(partitions)

    def _acknowledged(self, partitions: Sequence[TopicPartition]) -> None:
        self._ctx.metrics.commits_child.inc()
        self._record(partitions)

    def _record(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            state = self._ctx.state_of(tp)
            if state is None:
                continue
            if tp.offset < state.offsets.committed:
                # An older commit answered after a newer one (sent again while the coordinator moved): the
                # coordinator applied it last, so the group is back at it. Commit the newer offset again at the
                # next interval instead of believing it stored (nemesis seed 129: committed 734 of 978 for ever).
                state.offsets.committed = state.commit_sent = tp.offset
                self._ctx.tally.since_commit = max(self._ctx.tally.since_commit, 1)
            else:
                state.offsets.committed = tp.offset
            self._on_acknowledged(tp.topic, tp.partition, tp.offset)

    def _failed(self, offsets: Sequence[TopicPartition], error: str, kafka_error: KafkaError | None) -> None:
        ctx = self._ctx
        ctx.metrics.commit_failures_child.inc()
        if kafka_error is not None and (kafka_error.fatal() or kafka_error.code() == KafkaError._FATAL):
            self._on_fatal(kafka_error)
            return
        for tp in offsets:
            state = ctx.state_of(tp)
            if state is not None:
                state.commit_sent = state.offsets.committed  # send it again with the next commit
        # ... which must come even if no record completes any more (an idle topic after a rebalance).
        ctx.tally.since_commit = max(ctx.tally.since_commit, 1)
        ctx.log.warning("offset commit failed; the records stay uncommitted and may be redelivered", error=error)
