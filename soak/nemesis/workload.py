"""The nemesis workload: two topics, many keys, every kind of record, two producers.

Records are known by their position ``(topic, partition, offset)``: P is every position the idempotent
producer had acknowledged plus every position of a committed transaction; A (aborted) the positions of the
aborted transactions. Keys are shared (``k0042``): ``ORDERING=key`` has chains to keep in order, and a key
always goes to the same partition. Each good record has a unique ``record_id`` (``<prefix>-<seq>``).

Kinds and what must become of them (``expect``): ``good``, ``flaky`` (``fail_times`` 1-2, under
``RETRY_MAX_ATTEMPTS``), ``slow`` (``slow_first_ms``) -> processed; ``poison`` -> D with ``poison``;
``invalid`` (payload schema) -> D with ``validation``; ``undecodable`` (not JSON) -> D with ``decode``.
With retry tiers (:data:`TIERED`): ``tiered`` (``fail_until_tier`` 1-2) fails transiently until it is read
from that tier, so it passes through one or both tiers, then is processed (also when it entered a tier untried,
following its key); ``exhausted`` always fails transiently -> D with ``retries_exhausted`` after the last tier.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from neotool_common.testing.harness import ReadRecord
from soak.workload import envelope

__all__ = ["TIERED", "Position", "Record", "Traffic", "WorkloadPlan", "plan_records"]

Position = tuple[str, int, int]
PROCESS = "process"
KEYS = 97
EXPECT = {"poison": "poison", "invalid": "validation", "undecodable": "decode", "exhausted": "retries_exhausted"}


@dataclass(frozen=True)
class Record:
    kind: str
    key: str
    record_id: str
    value: bytes
    partition: int

    @property
    def expect(self) -> str:
        return EXPECT.get(self.kind, PROCESS)


@dataclass(frozen=True)
class WorkloadPlan:
    """Which kinds, how often (weights), and how slow the slow ones are."""

    slow_ms: int = 150
    weights: tuple[tuple[str, int], ...] = (
        ("good", 88),
        ("flaky", 4),
        ("slow", 1),
        ("poison", 3),
        ("invalid", 2),
        ("undecodable", 2),
    )
    flaky_max: int = 2  # a flaky record fails 1 to this many times: fewer than the in-place attempts


# The retry-tier modes' mix: 6 % pass through one or two tiers, 1 % through both and on to the DLQ.
TIERED = WorkloadPlan(
    weights=(
        ("good", 81),
        ("flaky", 4),
        ("tiered", 6),
        ("exhausted", 1),
        ("slow", 1),
        ("poison", 3),
        ("invalid", 2),
        ("undecodable", 2),
    ),
    flaky_max=1,  # a flaky record that follows its key into the last tier untried has RETRY_MAX_ATTEMPTS=2 there
)


def plan_records(rng: random.Random, prefix: str, count: int, partitions: int, plan: WorkloadPlan) -> list[Record]:
    kinds = [k for k, _ in plan.weights]
    weights = [w for _, w in plan.weights]
    records = []
    for seq in range(count):
        kind = rng.choices(kinds, weights)[0]
        key_index = rng.randrange(KEYS)
        record_id = f"{prefix}-{seq:06}"
        payload: dict[str, Any] = {"seq": seq}
        if kind == "flaky":
            payload["fail_times"] = rng.randint(1, plan.flaky_max)
        elif kind == "tiered":
            payload["fail_until_tier"] = rng.randint(1, 2)
        elif kind == "exhausted":
            payload["fail_until_tier"] = 99
        elif kind == "slow":
            payload["slow_first_ms"] = plan.slow_ms
        elif kind == "poison":
            payload["poison"] = True
        elif kind == "invalid":
            payload["seq"] = str(seq)
        value = b"{not json " + record_id.encode() if kind == "undecodable" else envelope(record_id, payload)
        records.append(Record(kind, f"k{key_index:04}", record_id, value, key_index % partitions))
    return records


@dataclass
class Traffic:
    """What the producers did: P (acknowledged or committed), A (aborted), and the refused."""

    acked: dict[Position, Record] = field(default_factory=dict)
    aborted: dict[Position, Record] = field(default_factory=dict)
    refused: int = 0
    # acknowledged without an offset (a retried batch the broker had already stored answers
    # DUPLICATE_SEQUENCE_NUMBER, which librdkafka reports as delivered, offset unknown): placed by place()
    unplaced: list[tuple[str, Record]] = field(default_factory=list)
    unplaced_placed: int = 0  # of those, found in their partition (and so in P at that position)
    unplaced_missing: int = 0  # of those, not in the partition: never stored, so never acknowledged
    transactions: int = 0
    aborted_transactions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def place(self, read: Callable[[str], list[ReadRecord]]) -> None:
        """Give each record acknowledged without an offset its position, read back from its partition (records
        are unique by value: each carries its ``record_id``). One that is not there was never stored: it is
        taken out of P (counted in ``unplaced_missing``), since nothing can have been acknowledged of it."""
        for topic in sorted({topic for topic, _ in self.unplaced}):
            where = {(r.partition, r.value): r.offset for r in read(topic)}
            for record in [r for t, r in self.unplaced if t == topic]:
                offset = where.get((record.partition, record.value))
                if offset is None:
                    self.unplaced_missing += 1
                else:
                    self.unplaced_placed += 1
                    self.acked[(topic, record.partition, offset)] = record
        self.unplaced = []


class Producers:
    """Both producers in background threads, each sending its plan at ``rate`` records per second.

    The transactional producer sends transactions of 5-20 records and aborts about one in four; the
    records of an aborted transaction are flushed first, so that they are on the log (at offsets the
    consumers must skip) before the abort marker.
    """

    def __init__(
        self,
        bootstrap: str,
        plain: tuple[str, list[Record]],
        transactional: tuple[str, list[Record]],
        rate: float,
        seed: int,
    ) -> None:
        self.traffic = Traffic()
        self._bootstrap = bootstrap
        self._rate = rate
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._threads = [
            threading.Thread(target=self._guard, args=(self._plain, *plain), daemon=True, name="plain"),
            threading.Thread(
                target=self._guard, args=(self._transactional, *transactional), daemon=True, name="transactional"
            ),
        ]

    def __enter__(self) -> Producers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.join(1)

    def join(self, timeout: float) -> Traffic:
        """Wait until both plans are sent (or ``stop``), then hand back what happened."""
        for thread in self._threads:
            thread.join(timeout)
        assert not any(t.is_alive() for t in self._threads), "the producers did not finish"
        if self._errors:
            raise self._errors[0]
        return self.traffic

    def _guard(self, target: Any, topic: str, records: list[Record]) -> None:
        try:
            target(topic, records)
        except BaseException as exc:  # noqa: BLE001 - handed to join()
            self._errors.append(exc)

    def _config(self, **extra: Any) -> dict[str, Any]:
        return {
            "bootstrap.servers": self._bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "log_level": 3,
            "delivery.timeout.ms": 60_000,
            **extra,
        }

    def _paced(self, records: list[Record], chunk: int) -> Any:
        """Chunks of ``records`` at the producers' rate; stops early when told to."""
        started = time.monotonic()
        for index in range(0, len(records), chunk):
            due = started + index / self._rate
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            yield records[index : index + chunk]

    def _on_delivery(self, record: Record, into: dict[Position, Record], unplaced: list[tuple[str, Record]]) -> Any:
        def on_delivery(err: KafkaError | None, msg: Any) -> None:
            with self.traffic.lock:
                if err is None and msg.offset() is None:
                    unplaced.append((msg.topic(), record))
                elif err is None:
                    into[(msg.topic(), msg.partition(), msg.offset())] = record
                else:
                    self.traffic.refused += 1

        return on_delivery

    def _plain(self, topic: str, records: list[Record]) -> None:
        producer = Producer(self._config())
        for chunk in self._paced(records, 10):
            for record in chunk:
                on_delivery = self._on_delivery(record, self.traffic.acked, self.traffic.unplaced)
                self._send(producer, topic, record, on_delivery)
            producer.poll(0)
        assert producer.flush(90) == 0, "plain producer: records unacknowledged after 90s"

    def _transactional(self, topic: str, records: list[Record]) -> None:
        producer = Producer(self._config(**{"transactional.id": f"nemesis-{topic}", "transaction.timeout.ms": 60_000}))
        producer.init_transactions(60)
        for chunk in self._paced(records, self._rng.randint(5, 20)):
            abort = self._rng.random() < 0.25
            pending: dict[Position, Record] = {}
            unplaced: list[tuple[str, Record]] = []
            producer.begin_transaction()
            for record in chunk:
                self._send(producer, topic, record, self._on_delivery(record, pending, unplaced))
            assert producer.flush(60) == 0, "transactional producer: records unacknowledged after 60s"
            self._finish(producer, abort)
            with self.traffic.lock:
                (self.traffic.aborted if abort else self.traffic.acked).update(pending)
                if not abort:  # an aborted one without an offset cannot be told from the log: left out of A
                    self.traffic.unplaced += unplaced
                self.traffic.transactions += 1
                self.traffic.aborted_transactions += abort

    @staticmethod
    def _finish(producer: Producer, abort: bool) -> None:
        for _ in range(10):  # a retriable error (a coordinator moving) is tried again, bounded
            try:
                producer.abort_transaction(60) if abort else producer.commit_transaction(60)
                return
            except KafkaException as exc:
                if not exc.args[0].retriable():
                    raise
        raise AssertionError("the transaction could not be finished in 10 tries")

    @staticmethod
    def _send(producer: Producer, topic: str, record: Record, on_delivery: Any) -> None:
        for _ in range(10_000):
            try:
                producer.produce(
                    topic,
                    key=record.key.encode(),
                    value=record.value,
                    partition=record.partition,
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                producer.poll(0.1)
        raise AssertionError("the producer queue stayed full")
