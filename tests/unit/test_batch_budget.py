"""A batch's time budget and a stop, with the clock read after each process() call and every CLOCK_EVERY records."""

from __future__ import annotations

import time
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry

from neotool_common.clock import SystemClock
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer.batches import CLOCK_EVERY, Batches
from neotool_common.consumer.context import RunContext
from neotool_common.consumer.partition import PartitionState
from neotool_common.deadletter.circuit import CircuitBreaker
from neotool_common.observability.health import HealthState
from neotool_common.observability.metrics import ConsumerMetrics
from neotool_common.testing.fakes import FakeMessage

TOPIC = "bank.v1"
BUDGET_S = 1.0
STEP_S = 0.125  # what each record takes, on the clock below (a binary fraction: the sums are exact)


class Clock:
    """``time.perf_counter`` for the test: it moves only when a record is handled."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "perf_counter", fake)
    return fake


def context() -> RunContext:
    env = {"KAFKA_BROKERS": "127.0.0.1:9", "KAFKA_TOPICS": TOPIC, "KAFKA_GROUP_ID": "g", "METRICS_PORT": "0"}
    settings = RunnerSettings.from_env(env)
    health = HealthState(300, clock=SystemClock().monotonic)
    ctx = RunContext(settings, SystemClock(), ConsumerMetrics(CollectorRegistry(), "g"), health,
                     CircuitBreaker(settings.circuit), structlog.get_logger("test"))  # fmt: skip
    ctx.partitions[(TOPIC, 0)] = PartitionState(TOPIC, 0, ctx.metrics.topic(TOPIC))
    return ctx


def batch_of(count: int) -> list[Any]:
    return [FakeMessage(TOPIC, 0, offset, b"{}") for offset in range(count)]


def run(clock: Clock, processes: bool, stop_at: int | None = None) -> tuple[list[int], list[int]]:
    """Offsets handled and carried over; each record takes STEP_S; a processed one reads the clock at its end."""
    ctx = context()
    handled: list[int] = []

    def handle(state: PartitionState, msg: Any, received: float) -> None:
        handled.append(msg.offset())
        clock.now += STEP_S
        if processes:  # as RecordHandler.run does after process()
            ctx.perf_now = time.perf_counter()
        if msg.offset() == stop_at:
            ctx.stopping = True

    batches = Batches(ctx, handle, lambda error, topic: None, BUDGET_S)
    batches.handle(batch_of(3 * CLOCK_EVERY))
    return handled, [msg.offset() for msg in batches.take_carried([])]


def test_a_batch_of_processed_records_ends_at_the_first_record_past_its_budget(clock: Clock) -> None:
    handled, carried = run(clock, processes=True)
    past = int(BUDGET_S / STEP_S) + 1  # the record begun exactly at the budget's end is the last one
    assert handled == list(range(past)), "every record is begun within the budget, none after it"
    assert carried == list(range(past, 3 * CLOCK_EVERY)), "the rest waits for the next turn"


def test_records_that_reach_no_process_call_end_the_batch_within_clock_every_records(clock: Clock) -> None:
    handled, carried = run(clock, processes=False)
    assert handled == list(range(CLOCK_EVERY)), "the next reading of the clock ends the batch"
    assert carried == list(range(CLOCK_EVERY, 3 * CLOCK_EVERY))


def test_a_stop_lets_only_the_current_record_finish(clock: Clock) -> None:
    handled, carried = run(clock, processes=False, stop_at=2)
    assert handled == [0, 1, 2], "the record during which stop() came is finished, no other"
    assert carried == list(range(3, 3 * CLOCK_EVERY)), "the records not begun are carried over for the final commit"
