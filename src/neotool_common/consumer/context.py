"""What every part of the engine shares while a runner runs: settings, clock, metrics, logs, the assignment.

Each part owns one concern (:mod:`.flow` pauses, :mod:`.commits` commits, :mod:`.deadletters` dead-letter
writes, :mod:`.retries` backoffs, :mod:`.rebalance` assignment changes) and reads the rest from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message as KafkaMessage

from neotool_common.clock import Clock
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer.ownership import Ownership
from neotool_common.consumer.partition import PartitionState
from neotool_common.deadletter.circuit import CircuitBreaker
from neotool_common.observability.health import HealthState
from neotool_common.observability.line_budget import LineBudget
from neotool_common.observability.logs import trace_id_from_traceparent
from neotool_common.observability.metrics import ConsumerMetrics
from neotool_common.records.message import Message

__all__ = ["Key", "RunContext", "Tally"]

Key = tuple[str, int]


@dataclass
class Tally:
    """Records counted since the runner started, and since the last loop turn and commit."""

    processed: int = 0
    dead_lettered: int = 0
    turn_dead: int = 0  # dead-lettered during this loop turn (for the circuit breaker)
    since_commit: int = 0  # completed since the last commit was sent


@dataclass
class RunContext:
    settings: RunnerSettings
    clock: Clock
    metrics: ConsumerMetrics
    health: HealthState
    circuit: CircuitBreaker
    log: Any
    partitions: dict[Key, PartitionState] = field(default_factory=dict)
    tally: Tally = field(default_factory=Tally)
    closing: bool = False  # inside close(): the revoke it runs must not wait out the DLQ a second time
    stopping: bool = False  # a stop was requested or the client failed for good: no further record is begun
    # The poll thread's latest time.perf_counter(): taken after each process() call, and at least every
    # CLOCK_EVERY records of a batch (consumer/batches.py), whose time budget is checked against it.
    perf_now: float = 0.0
    ownership: Ownership = field(init=False)  # the assignment as other threads see it
    record_lines: LineBudget = field(init=False)  # LOG_RECORD_WARNINGS_PER_S: the per-record WARNING lines

    def __post_init__(self) -> None:
        self.ownership = Ownership(lambda: self.partitions)
        self.record_lines = LineBudget(self.settings.record_warnings_per_s, self.clock.monotonic, self._held_back)

    def _held_back(self, held: dict[str, int], window_s: float) -> None:
        self.log.warning(
            "more records failed than are logged one by one; counted here by kind (LOG_RECORD_WARNINGS_PER_S)",
            not_logged=held,
            records=sum(held.values()),
            window_s=window_s,
        )

    @property
    def debug(self) -> bool:
        return self.settings.log_level == "DEBUG"

    def state_of(self, tp: Any) -> PartitionState | None:
        return self.partitions.get((tp.topic, tp.partition))

    def states_of(self, partitions: list[Any]) -> list[PartitionState]:
        return [state for tp in partitions if (state := self.state_of(tp)) is not None]

    def record_log(self, message: Message | None, msg: KafkaMessage, error: BaseException | None = None) -> Any:
        """The logger bound to one record: its coordinates, ids and trace.

        Without a ``message`` (the record never became one), the ids a validation ``error`` read from the
        decoded object, else the key as the record_id (the convention).
        """
        fields: dict[str, Any] = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}
        if message is None:
            key = msg.key()
            fields["record_id"] = getattr(error, "record_id", None) or (
                key.decode("utf-8", "replace") if isinstance(key, bytes) else None
            )
            batch_id = getattr(error, "batch_id", None)
            if batch_id is not None:
                fields["batch_id"] = batch_id
        else:
            fields.update(record_id=message.record_id, batch_id=message.batch_id)
            trace_id = trace_id_from_traceparent(message.header("traceparent"))
            if trace_id:
                fields["trace_id"] = trace_id
        return self.log.bind(**fields)
