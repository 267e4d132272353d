"""Test doubles for unit tests of consumers: an in-memory Kafka consumer and a producer that records writes.

Pass them to a runner as ``consumer_factory``/``producer_factory`` (``functools.partial(FakeConsumer,
topic=..., values=...)``). Only what ``KafkaConsumerRunner`` calls is implemented, and it behaves like
librdkafka where that matters: commit results and rebalance callbacks are served inside ``consume()``; a
paused partition stays paused across revoke and assign until it is resumed; a pause keeps the position, a
seek moves it. Tests queue rebalances with :meth:`FakeConsumer.rebalance`. Integration behaviour is tested
against a real broker (:mod:`neotool_common.testing.kafka`); these are for unit tests only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

__all__ = ["FakeConsumer", "FakeMessage", "FakeProducer", "Produced", "UndecodableHeaderName"]

from confluent_kafka import KafkaError, TopicPartition

Callback = Callable[..., None]


@dataclass
class FakeMessage:
    """The part of ``confluent_kafka.Message`` the runner, the producer and ``neotool-dlq`` read."""

    _topic: str
    _partition: int
    _offset: int
    _value: bytes | None = None
    _key: bytes | None = None
    _headers: list[tuple[str, bytes | None]] | None = None
    _timestamp: tuple[int, int] = (1, 1_714_566_000_000)

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp


class UndecodableHeaderName(FakeMessage):
    """A record with a header name that is not UTF-8, which confluent-kafka cannot produce but may receive."""

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")


class FakeConsumer:
    """Partitions of one topic; ``committed`` is what the 'broker' acknowledged."""

    def __init__(self, config: dict[str, Any], topic: str, values: dict[int, list[bytes]]) -> None:
        self.topic = topic
        self.log = {p: [FakeMessage(topic, p, o, v) for o, v in enumerate(vs)] for p, vs in values.items()}
        self.positions = dict.fromkeys(values, 0)
        self.committed: dict[int, int] = {}
        self.assigned: set[int] = set()
        self.paused: set[int] = set()
        self.commit_calls: list[dict[int, int]] = []
        self.fail_next_commits = 0
        self.consume_calls = 0
        self._on_commit: Callback = config["on_commit"]
        self._callbacks: dict[str, Callback] = {}
        self._served: list[Callable[[], None]] = []  # run inside the next consume()
        self._lock = threading.Lock()
        self._wake = threading.Event()

    # -- what the runner calls -------------------------------------------------------------------

    def subscribe(self, topics: list[str], on_assign: Callback, on_revoke: Callback, on_lost: Callback) -> None:
        self._callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}
        self.rebalance(assign=sorted(self.log))

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        self.consume_calls += 1
        with self._lock:
            served, self._served = self._served, []
        for event in served:
            event()
        batch = self._fetch(num_messages)
        if not batch:
            self._wake.wait(timeout)
            self._wake.clear()
        return batch

    def commit(self, offsets: list[TopicPartition], asynchronous: bool = True) -> None:
        """Acknowledged at once; an asynchronous one is reported in the next ``consume()``, maybe as failed."""
        positions = {tp.partition: tp.offset for tp in offsets}
        self.commit_calls.append(positions)
        if asynchronous and self.fail_next_commits:
            self.fail_next_commits -= 1
            failed = [TopicPartition(self.topic, p, o) for p, o in positions.items()]
            self._serve(lambda: self._on_commit(KafkaError(KafkaError.ILLEGAL_GENERATION), failed))
            return
        self.committed.update(positions)
        if asynchronous:
            self._serve(lambda: self._on_commit(None, offsets))

    def seek(self, tp: TopicPartition) -> None:
        self.positions[tp.partition] = tp.offset

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.positions[tp.partition]) for tp in tps]

    def pause(self, tps: list[TopicPartition]) -> None:
        self.paused.update(tp.partition for tp in tps)

    def resume(self, tps: list[TopicPartition]) -> None:
        self.paused.difference_update(tp.partition for tp in tps)

    def list_topics(self, timeout: float = -1) -> SimpleNamespace:
        return SimpleNamespace(topics={self.topic: None, self.topic + ".dlq": None})

    def get_watermark_offsets(self, tp: TopicPartition, cached: bool = False) -> tuple[int, int]:
        return 0, len(self.log[tp.partition])

    def close(self) -> None:
        self._callbacks["revoke"](self, [TopicPartition(self.topic, p) for p in sorted(self.assigned)])
        self.assigned.clear()

    # -- what tests do ---------------------------------------------------------------------------

    def rebalance(self, revoke: Sequence[int] = (), assign: Sequence[int] = ()) -> None:
        """Revoke, then assign, partitions inside the next ``consume()``; assigned ones resume at the commit."""

        def event() -> None:
            if revoke:
                self._callbacks["revoke"](self, [TopicPartition(self.topic, p) for p in revoke])
                self.assigned.difference_update(revoke)
            if assign:
                for partition in assign:
                    self.positions[partition] = self.committed.get(partition, 0)
                self.assigned.update(assign)
                self._callbacks["assign"](self, [TopicPartition(self.topic, p) for p in assign])

        self._serve(event)

    def _serve(self, event: Callable[[], None]) -> None:
        with self._lock:
            self._served.append(event)
        self._wake.set()

    def _fetch(self, limit: int) -> list[FakeMessage]:
        batch: list[FakeMessage] = []
        for partition in sorted(self.assigned - self.paused):
            start = self.positions[partition]
            taken = self.log[partition][start : start + limit - len(batch)]
            self.positions[partition] = start + len(taken)
            batch += taken
        return batch


@dataclass
class Produced:
    """One ``produce()`` call: where it went, what it carried, and the callback that answers it."""

    topic: str
    value: bytes | None
    key: bytes | None
    headers: list[tuple[str, bytes | None]] | None
    on_delivery: Callable[[Any, Any], None]
    timestamp: int | None = None


@dataclass
class FakeProducer:
    """Records every write and acknowledges it at the next ``poll()``/``flush()``, as a healthy broker would.

    Faults on demand: topics in ``failing`` time out, ``hold`` answers nothing, ``answer_on_poll=False`` answers
    only on ``flush()`` (a broker slower than ``poll(0)``), ``refuse_next`` is raised by the next
    ``produce()``, and the next ``full_for`` calls find the queue full.
    """

    config: dict[str, Any] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    hold: bool = False
    answer_on_poll: bool = True
    refuse_next: BaseException | None = None
    full_for: int = 0
    queue: list[Produced] = field(default_factory=list)
    log: list[Produced] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)

    @property
    def produced(self) -> list[tuple[str, bytes | None, dict[str, bytes | None]]]:
        """``(topic, value, headers)`` of every write, in order."""
        return [(p.topic, p.value, dict(p.headers or ())) for p in self.log]

    def produce(self, topic: str, value: Any = None, key: Any = None, **kwargs: Any) -> None:
        if self.full_for:
            self.full_for -= 1
            raise BufferError("Local: Queue full")
        if self.refuse_next is not None:
            refusal, self.refuse_next = self.refuse_next, None
            raise refusal
        produced = Produced(topic, value, key, kwargs.get("headers"), kwargs["on_delivery"], kwargs.get("timestamp"))
        self.queue.append(produced)
        self.log.append(produced)

    def poll(self, timeout: float = 0) -> int:
        return self._answer() if self.answer_on_poll else 0

    def flush(self, timeout: float = 0) -> int:
        self._answer()
        return len(self.queue)

    def _answer(self) -> int:
        if self.hold:
            return 0
        answered, self.queue = self.queue, []
        for produced in answered:
            if produced.topic in self.failing:
                produced.on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), None)
            else:
                offset = self.offsets.get(produced.topic, 0)
                self.offsets[produced.topic] = offset + 1
                produced.on_delivery(None, FakeMessage(produced.topic, 0, offset, produced.value, produced.key))
        return len(answered)
