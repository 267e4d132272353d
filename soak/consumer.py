"""The soak consumer: a ``KafkaConsumerRunner`` that writes everything it does to the ledger.

Run as a process by the scenarios: ``python -m soak.consumer``, configured like any consumer from the
environment (``KAFKA_BROKERS``, ``KAFKA_TOPICS``, ``KAFKA_GROUP_ID``, ``COMMIT_*``...), plus:

==================  ============================================================================
``SOAK_LEDGER``     the scenario's ledger file (:mod:`soak.ledger`)
``SOAK_MEMBER``     this process's name in the ledger (``c2.5``: slot 2, fifth start)
``SOAK_WORK_MS``    simulated work per record (default 0)
``SOAK_HANDLER``    ``normal`` (default), ``fixed`` (the release that accepts ``fixable`` records),
                    ``reject-all`` (a bad deploy: every record is poison), ``strict-schema`` (a bad deploy:
                    a payload schema no record meets)
``SOAK_MODE``       the throughput mode: ``sequential`` (default; ``ORDERING``/``MAX_CONCURRENCY`` from the
                    environment), ``async`` (``async def process``), ``batch`` (``process_batch``)
``SOAK_CONTROL``    a folder the nemesis drives (:mod:`soak.nemesis.control`): while ``outage`` exists every
                    ``process()`` fails transiently; while ``spike`` holds a future time, ``process()`` sleeps
                    until then (a latency spike)
``SOAK_FAULT``      a fault hook: ``dlq-sent@P:O`` / ``dlq-acked@P:O`` SIGKILL this process right after the
                    dead-letter write of source partition P offset O was handed to the producer /
                    acknowledged (before any commit); ``stop-after@N`` SIGSTOPs it inside ``process()`` of its
                    N-th record, after the ledger has it
==================  ============================================================================

What the handler does with a record is written in its payload (:mod:`soak.workload`): ``poison`` raises
``PoisonMessageError``; ``fixable`` too, unless the handler is ``fixed``; ``fail_times: n`` raises a transient
``ConnectionError`` on the first n attempts; ``fail_until_tier: t`` raises one whenever the record is read from
the source or a retry tier below t (``retry.tier``); ``slow_first_ms`` sleeps that long on the first delivery only.

The hooks observe the runner from outside its code: the librdkafka consumer and the DLQ producer are
given to the runner through its ``consumer_factory`` and ``producer_factory`` parameters, wrapped to write
every commit, commit result, assignment change and dead-letter write to the ledger.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.deadletter import retry_headers as rh
from neotool_common.deadletter.headers import DLQ_ORIGINAL_OFFSET, DLQ_ORIGINAL_PARTITION
from neotool_common.errors import PoisonMessageError
from neotool_common.policies.retry_topics import RETRY_INFIX
from neotool_common.records.message import Message
from soak.ledger import EventKind, Ledger

PAYLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["seq"],
    "properties": {
        "seq": {"type": "integer"},
        "poison": {"type": "boolean"},
        "fixable": {"type": "boolean"},
        "fail_times": {"type": "integer", "minimum": 0},
        "fail_until_tier": {"type": "integer", "minimum": 0},
        "slow_first_ms": {"type": "integer", "minimum": 0},
        "pad": {"type": "string"},
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class FaultHook:
    """A parsed ``SOAK_FAULT``: which point, and for which source record or record count."""

    point: str = ""
    partition: int = -1
    offset: int = -1
    count: int = 0

    @classmethod
    def parse(cls, text: str) -> FaultHook:
        if not text:
            return cls()
        point, _, where = text.partition("@")
        if point == "stop-after":
            return cls(point, count=int(where))
        partition, _, offset = where.partition(":")
        return cls(point, int(partition), int(offset))

    def matches(self, point: str, partition: int, offset: int) -> bool:
        return self.point == point and (self.partition, self.offset) == (partition, offset)


Position = tuple[str, int, int]


class RecordingConsumer:
    """The librdkafka consumer, writing commits, commit results and assignment changes to the ledger.

    It also remembers, in ``read_at``, where it last read each source record that came from a retry tier (source
    position -> tier position): the tier write the runner makes next for that record is logged with it."""

    def __init__(
        self, config: dict[str, Any], ledger: Ledger, member: str, read_at: dict[Position, Position] | None = None
    ) -> None:
        self._ledger = ledger
        self._member = member
        self.read_at: dict[Position, Position] = {} if read_at is None else read_at
        runner_on_commit = config["on_commit"]

        def on_commit(err: Any, partitions: list[TopicPartition]) -> None:
            self._record_results(err, partitions)
            runner_on_commit(err, partitions)

        self._consumer = Consumer({**config, "on_commit": on_commit})

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        messages = self._consumer.consume(num_messages, timeout)
        for msg in messages:
            if msg.error() is not None:
                continue
            if RETRY_INFIX not in msg.topic():  # read from the source (again): its next tier write is from there
                self.read_at.pop((msg.topic(), msg.partition(), msg.offset()), None)
            else:
                headers = dict(msg.headers() or ())
                try:
                    source = (
                        headers[rh.RETRY_ORIGINAL_TOPIC].decode(),
                        int(headers[rh.RETRY_ORIGINAL_PARTITION]),
                        int(headers[rh.RETRY_ORIGINAL_OFFSET]),
                    )
                except (KeyError, ValueError, AttributeError):
                    continue
                self.read_at[source] = (msg.topic(), msg.partition(), msg.offset())
        return list(messages)

    def subscribe(self, topics: list[str], *, on_assign: Any, on_revoke: Any, on_lost: Any) -> None:
        self._consumer.subscribe(
            topics,
            on_assign=self._logged(EventKind.ASSIGNED, on_assign, first=True),
            # after the runner's own revoke work: its synchronous commit belongs to the partitions it gives up
            on_revoke=self._logged(EventKind.REVOKED, on_revoke, first=False),
            # after the runner's own lost work too: the records that had not started are dropped by then, so a
            # completion logged after it is one that was inside the handler (the nemesis bounds those)
            on_lost=self._logged(EventKind.LOST, on_lost, first=False),
        )

    def _logged(self, kind: str, callback: Callable[[Any, list[TopicPartition]], None], *, first: bool) -> Any:
        def log(partitions: list[TopicPartition]) -> None:
            self._ledger.record_many(self._member, kind, [(tp.topic, tp.partition, -1, None) for tp in partitions])

        def logged(consumer: Any, partitions: list[TopicPartition]) -> None:
            if first:
                log(partitions)
            callback(consumer, partitions)
            if not first:
                log(partitions)

        return logged

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> Any:
        mode = "async" if asynchronous else "sync"
        self._ledger.record_many(
            self._member, EventKind.COMMIT, [(t.topic, t.partition, t.offset, mode) for t in offsets]
        )
        try:
            if asynchronous:
                self._consumer.commit(offsets=offsets, asynchronous=True)
                return None
            result = self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            self._ledger.record_many(
                self._member, EventKind.COMMIT_FAILED, [(t.topic, t.partition, t.offset, str(exc)) for t in offsets]
            )
            raise
        self._record_results(None, result)  # a synchronous commit answers here, not in on_commit
        return result

    def _record_results(self, err: Any, partitions: list[TopicPartition]) -> None:
        rows_ok = [(tp.topic, tp.partition, tp.offset, None) for tp in partitions if err is None and tp.error is None]
        rows_failed = [
            (tp.topic, tp.partition, tp.offset, str(err or tp.error))
            for tp in partitions
            if err is not None or tp.error is not None
        ]
        if rows_ok:
            self._ledger.record_many(self._member, EventKind.COMMIT_OK, rows_ok)
        if rows_failed:
            self._ledger.record_many(self._member, EventKind.COMMIT_FAILED, rows_failed)


class RecordingProducer:
    """The DLQ producer, writing each dead-letter write and its acknowledgement to the ledger; fault hooks."""

    def __init__(
        self,
        config: dict[str, Any],
        ledger: Ledger,
        member: str,
        fault: FaultHook,
        read_at: dict[Position, Position] | None = None,
    ) -> None:
        self._read_at = {} if read_at is None else read_at
        self._producer = Producer(config)
        self._ledger = ledger
        self._member = member
        self._fault = fault

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    def produce(self, topic: str, value: Any = None, key: Any = None, **kwargs: Any) -> None:
        headers = dict(kwargs.get("headers") or ())
        record_id = key.decode("utf-8", "replace") if isinstance(key, bytes) else None
        if not topic.endswith(".dlq"):  # a retry tier's copy: logged with the source record's coordinates
            self._produce_tier_copy(topic, record_id, value=value, key=key, **kwargs)
            return
        partition = int(headers[DLQ_ORIGINAL_PARTITION])
        offset = int(headers[DLQ_ORIGINAL_OFFSET])
        source = topic.removesuffix(".dlq")
        runner_on_delivery = kwargs["on_delivery"]

        def on_delivery(err: Any, msg: Any) -> None:
            kind = EventKind.DLQ_ACKED if err is None else EventKind.DLQ_FAILED
            self._ledger.record(
                self._member, kind, source, partition, offset, record_id, None if err is None else str(err)
            )
            runner_on_delivery(err, msg)
            if err is None and self._fault.matches("dlq-acked", partition, offset):
                self._die(partition, offset)  # acknowledged, and not yet committed

        self._ledger.record(self._member, EventKind.DLQ_SENT, source, partition, offset, record_id)
        self._producer.produce(topic, value=value, key=key, **{**kwargs, "on_delivery": on_delivery})
        if self._fault.matches("dlq-sent", partition, offset):
            self._die(partition, offset)  # handed to the producer, not yet acknowledged

    def _produce_tier_copy(self, topic: str, record_id: str | None, **kwargs: Any) -> None:
        headers = dict(kwargs["headers"])
        source = headers[rh.RETRY_ORIGINAL_TOPIC].decode()
        partition = int(headers[rh.RETRY_ORIGINAL_PARTITION])
        offset = int(headers[rh.RETRY_ORIGINAL_OFFSET])
        runner_on_delivery = kwargs["on_delivery"]

        def on_delivery(err: Any, msg: Any) -> None:
            kind, detail = (EventKind.TIER_ACKED, f"{topic}:{msg.partition()}") if err is None else (
                EventKind.TIER_FAILED, f"{topic}: {err}"
            )  # fmt: skip
            self._ledger.record(self._member, kind, source, partition, offset, record_id, detail)
            runner_on_delivery(err, msg)

        read = self._read_at.get((source, partition, offset), (source, partition, offset))  # else: from the source
        detail = f"{topic} from {':'.join(map(str, read))}"
        self._ledger.record(self._member, EventKind.TIER_SENT, source, partition, offset, record_id, detail)
        self._producer.produce(topic, **{**kwargs, "on_delivery": on_delivery})

    def _die(self, partition: int, offset: int) -> None:
        """SIGKILL this process at the hook; the ledger's FAULT event names it as ``SOAK_FAULT`` did."""
        hook = f"{self._fault.point}@{partition}:{offset}"
        self._ledger.record(self._member, EventKind.FAULT, None, partition, offset, None, hook)
        os.kill(os.getpid(), signal.SIGKILL)


def _source(message: Message) -> tuple[str, int, int]:
    """The source record's position: the message's own, or, read from a retry tier, its ``retry.original.*``."""
    topic = message.header(rh.RETRY_ORIGINAL_TOPIC)
    partition, offset = message.header(rh.RETRY_ORIGINAL_PARTITION), message.header(rh.RETRY_ORIGINAL_OFFSET)
    if topic is None or partition is None or offset is None:
        return (message.topic, message.partition, message.offset)
    return (topic, int(partition), int(offset))


class ThreadLedger:
    """One ledger connection per thread (SQLite connections are not shared): worker threads write too."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def _ledger(self) -> Ledger:
        ledger = getattr(self._local, "ledger", None)
        if ledger is None:
            ledger = self._local.ledger = Ledger(self.path)
        return ledger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger(), name)

    def close(self) -> None:
        ledger = getattr(self._local, "ledger", None)
        if ledger is not None:
            ledger.close()
            self._local.ledger = None


class SoakConsumer(KafkaConsumerRunner):
    group_id = "soak"
    payload_schema: ClassVar[dict[str, Any]] = PAYLOAD_SCHEMA

    def __init__(self, settings: RunnerSettings | None = None, **kwargs: Any) -> None:
        self.ledger: Any = ThreadLedger(os.environ["SOAK_LEDGER"])
        control = os.environ.get("SOAK_CONTROL", "")
        self.control = Path(control) if control else None
        self.member = os.environ.get("SOAK_MEMBER", f"pid{os.getpid()}")
        self.handler = os.environ.get("SOAK_HANDLER", "normal")
        self.work_s = int(os.environ.get("SOAK_WORK_MS", "0")) / 1000
        self.fault = FaultHook.parse(os.environ.get("SOAK_FAULT", ""))
        self.handled_here = 0
        read_at: dict[Position, Position] = {}  # shared by the consumer and the producer wrappers
        super().__init__(
            settings,
            consumer_factory=lambda config: RecordingConsumer(config, self.ledger, self.member, read_at),
            producer_factory=lambda config: RecordingProducer(config, self.ledger, self.member, self.fault, read_at),
            **kwargs,
        )

    def setup(self) -> None:
        self.ledger.record(self.member, EventKind.STARTED, detail=str(os.getpid()))

    def process(self, message: Message) -> None:
        if message.payload.get("fixable") and self.handler != "fixed":
            raise PoisonMessageError("rejected until the fix is deployed", "$.payload.fixable")
        self._check(message)
        time.sleep(self._delay_s(message))
        self._done(message)

    def _check(self, message: Message) -> None:
        """Raise what the record (or the nemesis's downstream outage) makes ``process()`` raise."""
        payload = message.payload
        if self.handler == "reject-all":
            raise PoisonMessageError("bad deploy: this release rejects every record", "$.payload")
        if payload.get("poison"):
            raise PoisonMessageError("poison record", "$.payload.poison")
        if self.control is not None and (self.control / "outage").exists():
            self.ledger.record(self.member, EventKind.ATTEMPT_FAILED, *_source(message), message.record_id, "outage")
            raise ConnectionError("downstream outage")
        if payload.get("fail_times"):
            self._fail_transiently(message, int(payload["fail_times"]))
        tier = int(message.header(rh.RETRY_TIER) or 0)
        if tier < payload.get("fail_until_tier", 0):
            self.ledger.record(self.member, EventKind.ATTEMPT_FAILED, *_source(message), message.record_id, "tier")
            raise ConnectionError(f"enrichment service unavailable until retry tier {payload['fail_until_tier']}")

    def _delay_s(self, message: Message) -> float:
        """How long handling this record takes: its own slowness, a latency spike, the simulated work."""
        delay = self.work_s
        slow = message.payload.get("slow_first_ms")
        if slow and not self.ledger.deliveries_of(message.record_id):
            delay += slow / 1000  # the handler's own slowness, the fault under test
        if self.control is not None:
            try:
                until = float((self.control / "spike").read_text() or 0)
            except (OSError, ValueError):
                until = 0.0
            delay += max(0.0, min(until - time.time(), 30.0))
        return delay

    def _done(self, message: Message) -> None:
        source = _source(message)
        tier = None if source == (message.topic, message.partition, message.offset) else ":".join(map(str, source))
        self.ledger.record_processed(
            self.member, message.topic, message.partition, message.offset, message.record_id, tier
        )
        self.handled_here += 1
        if self.fault.point == "stop-after" and self.handled_here == self.fault.count:
            self.ledger.record(
                self.member,
                EventKind.FAULT,
                message.topic,
                message.partition,
                message.offset,
                message.record_id,
                "SIGSTOP inside process()",
            )
            os.kill(os.getpid(), signal.SIGSTOP)

    def _fail_transiently(self, message: Message, fail_times: int) -> None:
        failed = self.ledger.count(EventKind.ATTEMPT_FAILED, record_id=message.record_id)
        if failed < fail_times:
            attempt = failed + 1
            self.ledger.record(
                self.member, EventKind.ATTEMPT_FAILED, *_source(message), message.record_id, str(attempt)
            )
            raise ConnectionError(f"enrichment service unavailable (attempt {attempt})")

    def teardown(self) -> None:
        self.ledger.close()


class AsyncSoakConsumer(SoakConsumer):
    """``async def process``: the same handler on the runner's event loop, ``MAX_CONCURRENCY`` at a time."""

    async def process(self, message: Message) -> None:  # type: ignore[override]
        self._check(message)
        await asyncio.sleep(self._delay_s(message))
        self._done(message)


class BatchSoakConsumer(SoakConsumer):
    """``process_batch``: a failure anywhere in the batch sends each record through ``process()`` alone."""

    def process_batch(self, messages: list[Message]) -> None:
        for message in messages:
            self._check(message)
        time.sleep(sum(self._delay_s(m) for m in messages))
        for message in messages:
            self._done(message)


class StrictSchemaConsumer(SoakConsumer):
    """A bad deploy of the payload schema: it requires a field no producer sends."""

    payload_schema: ClassVar[dict[str, Any]] = {
        **PAYLOAD_SCHEMA,
        "required": ["seq", "account_iban"],
        "properties": {**PAYLOAD_SCHEMA["properties"], "account_iban": {"type": "string"}},
    }


def main() -> int:
    kinds: dict[str, type[SoakConsumer]] = {"async": AsyncSoakConsumer, "batch": BatchSoakConsumer}
    kind = kinds.get(os.environ.get("SOAK_MODE", ""), SoakConsumer)
    if os.environ.get("SOAK_HANDLER") == "strict-schema":
        kind = StrictSchemaConsumer
    return kind.main()


if __name__ == "__main__":
    sys.exit(main())
