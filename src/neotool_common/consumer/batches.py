"""A batch of records from ``consume()``, and the records it did not reach (*carried over* to the next turn).

A partition with a carried-over record is not settled: its position is past records that did not complete,
so only its lowest incomplete offset may be committed. Revoked or lost partitions drop their carried records
(whoever owns them next starts from the committed offset).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka import Message as KafkaMessage

from neotool_common.consumer.context import Key, RunContext
from neotool_common.consumer.partition import PartitionState

__all__ = ["CLOCK_EVERY", "Batches"]

# A batch's budget is checked before each record against ctx.perf_now, which each process() call renews;
# records that reach no process() call read the clock every CLOCK_EVERY records (a reading costs ~0.1 us).
CLOCK_EVERY = 64
_CLOCK_MASK = CLOCK_EVERY - 1


class Batches:
    def __init__(
        self,
        ctx: RunContext,
        handle_record: Callable[[PartitionState, KafkaMessage, float], None],
        on_error: Callable[[KafkaError, str | None], None],  # an error consume() returned, and its topic
        budget_s: float,
    ) -> None:
        self._ctx = ctx
        self._handle_record = handle_record
        self._on_error = on_error
        self._budget_s = budget_s
        self._carried: list[KafkaMessage] = []

    @property
    def carried(self) -> int:
        return len(self._carried)

    def take_carried(self, messages: list[KafkaMessage]) -> list[KafkaMessage]:
        """The carried-over records, then ``messages``; nothing is carried any more."""
        carried, self._carried = self._carried, []
        return carried + messages

    def handle(self, messages: list[KafkaMessage]) -> None:
        ctx = self._ctx  # ctx.stopping: a stop request or a fatal client error, read before each record
        partitions: dict[Any, PartitionState] = ctx.partitions  # keyed by (topic, partition), no cast per record
        handle = self._handle_record
        clock = time.perf_counter
        received = ctx.perf_now = clock()
        deadline = received + self._budget_s
        index = 0
        state: PartitionState | None = None
        run: tuple[str | None, int | None] = (None, -1)  # the partition of this run of records (consume() returns runs)
        try:
            for index, msg in enumerate(messages):
                if not index & _CLOCK_MASK:  # records not processed (dead-lettered, skipped) read no clock
                    ctx.perf_now = clock()
                if ctx.stopping or ctx.perf_now > deadline:
                    self.carry_over(messages[index:])
                    return
                error = msg.error()
                if error is not None:
                    self._on_error(error, msg.topic())
                    continue
                if msg.partition() != run[1] or msg.topic() != run[0]:  # the assignment changes only in consume()
                    run = (msg.topic(), msg.partition())
                    state = partitions.get(run)
                if state is None or state.blocked:
                    continue  # revoked, or waiting out a retry: the record will be fetched again
                handle(state, msg, received)
        except BaseException:
            # Whatever stops the run here (the circuit breaker, a broken hook), the records from this one on
            # were not completed: kept as carried over, their partitions' positions are not committed.
            self.carry_over(messages[index:])
            raise
        finally:
            ctx.metrics.flush()

    def carry_over(self, unhandled: list[KafkaMessage]) -> None:
        """Keep the records a batch did not reach for the next turn of the loop, which polls first.

        A batch stops once it has run for the commit interval (or half of ``max.poll.interval.ms``): however slow
        ``process()`` is, commits, dead-letter acknowledgements and polls keep their pace, and a batch of slow
        records cannot exceed ``max.poll.interval.ms`` and get the member evicted from its group. Records of a
        partition waiting out a retry are dropped: it was sought back and fetches them again. A batch cut short
        by a stop keeps its rest here too, so that the final commit knows those partitions are not settled.
        """
        partitions = self._ctx.partitions
        self._carried = [
            msg
            for msg in unhandled
            if msg.error() is not None
            or ((state := partitions.get(cast(Key, (msg.topic(), msg.partition())))) is not None and not state.blocked)
        ]

    def forget(self, partitions: list[TopicPartition]) -> None:
        if self._carried:  # a partition assigned again starts from its committed offset, not from these
            gone = {(tp.topic, tp.partition) for tp in partitions}
            self._carried = [msg for msg in self._carried if (msg.topic(), msg.partition()) not in gone]

    def holds(self, state: PartitionState) -> bool:
        """True while a record of ``state``'s partition waits here for the next turn."""
        return any(msg.partition() == state.partition and msg.topic() == state.topic for msg in self._carried)
