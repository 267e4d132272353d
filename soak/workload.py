"""What the scenarios produce, and P: the records the broker acknowledged, with where they landed.

Every record has a unique key, which is also its envelope ``record_id`` when it has an envelope, and an
expectation: processed (it must end up in O and never in D) or dead-lettered (it must end up in D with its
``dlq.reason``, and never in O). What the soak handler does with a record is written in its payload
(see :mod:`soak.consumer`).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, Producer

__all__ = ["Acked", "Planned", "Produced", "ProducerThread", "envelope", "planned_records", "produce"]

BATCH_ID = str(uuid.uuid4())
PROCESS = "process"


@dataclass(frozen=True)
class Planned:
    """One record to produce. ``expect`` is ``"process"`` or the ``dlq.reason`` it must be dead-lettered with."""

    key: str
    value: bytes | None
    expect: str = PROCESS
    partition: int | None = None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def valid(self) -> bool:
        return self.expect == PROCESS


@dataclass(frozen=True)
class Acked:
    planned: Planned
    partition: int
    offset: int


@dataclass
class Produced:
    """P: acknowledged records by key, and the number of produce attempts that were refused."""

    acked: dict[str, Acked] = field(default_factory=dict)
    refused: int = 0

    def add(self, other: Produced) -> None:
        self.acked.update(other.acked)
        self.refused += other.refused

    def keys(self, *, valid: bool | None = None) -> set[str]:
        return {k for k, a in self.acked.items() if valid is None or a.planned.valid == valid}

    def by_partition(self) -> dict[int, list[Acked]]:
        result: dict[int, list[Acked]] = {}
        for acked in sorted(self.acked.values(), key=lambda a: (a.partition, a.offset)):
            result.setdefault(acked.partition, []).append(acked)
        return result


def envelope(record_id: str, payload: Mapping[str, Any]) -> bytes:
    return json.dumps(
        {
            "batch_id": BATCH_ID,
            "record_id": record_id,
            "ingested_at": datetime.now(UTC).isoformat(),
            "payload": dict(payload),
        },
        separators=(",", ":"),
    ).encode()


def planned_records(
    prefix: str,
    count: int,
    partitions: int,
    *,
    poison_every: int = 0,
    start: int = 0,
    extra: Mapping[str, Any] | None = None,
) -> list[Planned]:
    """``count`` envelopes spread round-robin over ``partitions``; every ``poison_every``-th one is poison."""
    records = []
    for seq in range(start, start + count):
        key = f"{prefix}-{seq:06}"
        poison = bool(poison_every) and seq % poison_every == poison_every - 1
        payload: dict[str, Any] = {"seq": seq, **(extra or {})}
        if poison:
            payload["poison"] = True
        records.append(Planned(key, envelope(key, payload), "poison" if poison else PROCESS, seq % partitions))
    return records


def _producer(bootstrap: str, config: Mapping[str, Any] | None) -> Producer:
    return Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "log_level": 3,
            **(config or {}),
        }
    )


def produce(
    bootstrap: str, topic: str, records: Iterable[Planned], config: Mapping[str, Any] | None = None
) -> Produced:
    """Produce ``records`` in order and wait for every acknowledgement; fails if any is refused."""
    produced = Produced()
    producer = _producer(bootstrap, config)
    for planned in records:
        _send(producer, topic, planned, produced)
    assert producer.flush(60) == 0, "records still unacknowledged after 60s"
    assert produced.refused == 0, f"{produced.refused} records refused by the broker"
    return produced


def _send(producer: Producer, topic: str, planned: Planned, produced: Produced) -> None:
    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        if err is None:
            produced.acked[planned.key] = Acked(planned, msg.partition(), msg.offset())
        else:
            produced.refused += 1

    kwargs: dict[str, Any] = {"key": planned.key.encode(), "value": planned.value, "on_delivery": on_delivery}
    if planned.partition is not None:
        kwargs["partition"] = planned.partition
    if planned.headers:
        kwargs["headers"] = list(planned.headers)
    while True:
        try:
            producer.produce(topic, **kwargs)
            return
        except BufferError:  # the local queue is full: serve acknowledgements, then send it
            producer.poll(0.1)


class ProducerThread:
    """Produces ``planned_records`` at ``rate`` records per second until stopped; P is what was acknowledged.

    Used where records must keep arriving while faults happen (group churn, broker restarts). A refused
    record (its delivery timed out, e.g. while too few replicas were in sync) is not in P: it may or may not
    be on the topic, and the invariants only speak of acknowledged records.
    """

    def __init__(
        self, bootstrap: str, topic: str, prefix: str, partitions: int, rate: float, *, poison_every: int = 0
    ) -> None:
        self.produced = Produced()
        self._args = (bootstrap, topic, prefix, partitions, rate, poison_every)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"produce-{topic}", daemon=True)
        self._error: BaseException | None = None
        self.sent = 0

    def __enter__(self) -> ProducerThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> Produced:
        self._stop.set()
        self._thread.join(120)
        assert not self._thread.is_alive(), "the producer thread did not stop"
        if self._error is not None:
            raise self._error
        return self.produced

    def _run(self) -> None:
        bootstrap, topic, prefix, partitions, rate, poison_every = self._args
        producer = _producer(bootstrap, {"delivery.timeout.ms": 60_000})
        tick = 0.05
        per_tick = max(1, round(rate * tick))
        try:
            while not self._stop.wait(tick):
                for planned in planned_records(
                    prefix, per_tick, partitions, poison_every=poison_every, start=self.sent
                ):
                    _send(producer, topic, planned, self.produced)
                self.sent += per_tick
                producer.poll(0)
            producer.flush(90)
        except BaseException as exc:  # noqa: BLE001 - handed to stop()
            self._error = exc
