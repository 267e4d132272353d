"""A consumer run as its own process by ``test_runner_process``: ``python -m tests.integration.process_consumer``.

Configured like any consumer, from the environment (``KAFKA_BROKERS``, ``KAFKA_TOPICS``, ``KAFKA_GROUP_ID``...),
plus test settings: ``HANDLED_FILE``, where the ``record_id`` of every record whose ``process()`` returned is
appended and fsync'd before ``process()`` returns, and ``WORK_MS``, simulated work per record. A payload with
``"poison": true`` raises :class:`~neotool_common.errors.PoisonMessageError`; one with ``"flaky": true`` raises
``ConnectionError`` while the file ``FAIL_WHILE_FILE`` names exists (a downstream outage the test ends).
``MAX_CONCURRENCY`` and ``ORDERING`` run it in a throughput mode (the file is then written from several threads,
one whole line at a time).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import IO

from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.errors import PoisonMessageError
from neotool_common.records.message import Message


class FileRecordingConsumer(KafkaConsumerRunner):
    group_id = "process-consumer"

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
