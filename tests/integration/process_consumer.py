"""A consumer run as its own process by ``test_runner_process``: ``python -m tests.integration.process_consumer``.

Configured like any consumer, from the environment (``KAFKA_BROKERS``, ``KAFKA_TOPICS``, ``KAFKA_GROUP_ID``...),
plus test settings: ``HANDLED_FILE``, where the ``record_id`` of every record whose ``process()`` returned is
appended and fsync'd before ``process()`` returns, and ``WORK_MS``, simulated work per record. A payload with
``"poison": true`` raises :class:`~neotool_common.errors.PoisonMessageError`; one with ``"flaky": true`` raises
``ConnectionError`` while the file ``FAIL_WHILE_FILE`` names exists (a downstream outage the test ends).
``MAX_CONCURRENCY`` and ``ORDERING`` run it in a throughput mode (the file is then written from several threads,
one whole line at a time).

Two hooks put a process in a chosen state for a SIGKILL, deterministically: ``STALL_TIER_WRITE_KEY`` names the
key of a record whose retry-topic write the dead-letter producer takes but never sends nor acknowledges (as if
its broker never answered), and the file ``STALL_MARKER_FILE`` is written once it has taken it; ``CLOCK_AHEAD_MS``
sets the runner's wall clock that far ahead (a restart that comes after a tier's due time).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from confluent_kafka import Producer

from neotool_common.clock import Clock, SystemClock
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.errors import PoisonMessageError
from neotool_common.records.message import Message


class StallingProducer:
    """The dead-letter producer, but for the retry-topic write of one key: taken, then never sent nor acknowledged."""

    def __init__(self, config: dict[str, Any], key: bytes, marker: Path) -> None:
        self._producer = Producer(config)
        self._key = key
        self._marker = marker
        self.taken: list[str] = []

    def produce(self, topic: str, value: Any = None, key: Any = None, **kwargs: Any) -> None:
        if key == self._key and ".retry." in topic:
            self.taken.append(topic)
            with self._marker.open("w", encoding="utf-8") as marker:
                marker.write(topic)
                marker.flush()
                os.fsync(marker.fileno())
            return
        self._producer.produce(topic, value=value, key=key, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


class AheadClock:
    def __init__(self, ahead_s: float) -> None:
        self._ahead_s = ahead_s

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time() + self._ahead_s


class FileRecordingConsumer(KafkaConsumerRunner):
    group_id = "process-consumer"

    def __init__(self, settings: RunnerSettings | None = None, **kwargs: Any) -> None:
        stall = os.environ.get("STALL_TIER_WRITE_KEY")
        if stall:
            marker = Path(os.environ["STALL_MARKER_FILE"])
            kwargs["producer_factory"] = lambda config: StallingProducer(config, stall.encode(), marker)
        ahead_ms = int(os.environ.get("CLOCK_AHEAD_MS", "0"))
        clock: Clock = AheadClock(ahead_ms / 1000) if ahead_ms else SystemClock()
        super().__init__(settings, clock=clock, **kwargs)

    def setup(self) -> None:
        self._work_s = int(os.environ.get("WORK_MS", "0")) / 1000
        self._handled: IO[str] = open(os.environ["HANDLED_FILE"], "a", encoding="utf-8")  # noqa: SIM115 - closed in teardown
        self._lock = threading.Lock()

    def process(self, message: Message) -> None:
        if message.payload.get("poison"):
            raise PoisonMessageError("poison by request", "$.payload.poison")
        outage = os.environ.get("FAIL_WHILE_FILE")
        if message.payload.get("flaky") and outage and os.path.exists(outage):
            raise ConnectionError("downstream unavailable")
        if self._work_s:
            time.sleep(self._work_s)  # the work a real consumer would do
        with self._lock:
            self._handled.write(message.record_id + "\n")
            self._handled.flush()
            os.fsync(self._handled.fileno())

    def teardown(self) -> None:
        self._handled.close()


if __name__ == "__main__":
    sys.exit(FileRecordingConsumer.main())
