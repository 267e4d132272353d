"""Records replayed for another consumer group: committed past unprocessed, counted, logged at DEBUG only.

Over the in-memory consumer, in each way a runner handles records: one at a time, with workers, in batches.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer.replay_scope import ReplayScope
from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.records.message import Message
from neotool_common.testing.fakes import FakeConsumer, FakeMessage, FakeProducer
from neotool_common.testing.harness import running, wait_until
from neotool_common.testing.logs import capture_logs

TOPIC = "bank.v1"
GROUP = "enrich"
SKIPPED = "neotool_consumer_records_skipped_total"
SKIP_LABELS = {"topic": TOPIC, "group": GROUP, "reason": "replay_for_other_group"}


def envelope(offset: int) -> bytes:
    fields = {"batch_id": str(uuid.uuid4()), "record_id": f"r-{offset}", "ingested_at": "2024-05-01T12:00:00Z"}
    return json.dumps({**fields, "payload": {}}).encode()


# offset -> headers; offset 5 is not even JSON: for another group it must not be read, let alone dead-lettered
HEADERS: dict[int, list[tuple[str, bytes | None]]] = {
    1: [("dlq.replay.count", b"1"), ("dlq.replay.group", b"audit")],
    2: [("dlq.replay.count", b"1"), ("dlq.replay.group", GROUP.encode())],
    3: [("dlq.replay.group", None)],
    4: [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")],
    5: [("dlq.replay.group", b"audit")],
    6: [("dlq.replay.group", b"audit"), ("dlq.replay.group", GROUP.encode())],
}
PROCESSED = [0, 2, 3, 4, 6, 7]


class Runner(KafkaConsumerRunner):
    def __init__(self, **env: str) -> None:
        self.processed: list[int] = []
        self.fake: FakeConsumer | None = None
        self.producer = FakeProducer({})

        def consumer(config: dict[str, Any]) -> FakeConsumer:
            fake = FakeConsumer(config, TOPIC, {0: [envelope(offset) for offset in range(8)]})
            for offset, headers in HEADERS.items():
                value = b"not json" if offset == 5 else envelope(offset)
                fake.log[0][offset] = FakeMessage(TOPIC, 0, offset, value, _headers=headers)
            self.fake = fake
            return fake

        base = {"KAFKA_BROKERS": "127.0.0.1:9", "KAFKA_TOPICS": TOPIC, "KAFKA_GROUP_ID": GROUP, "METRICS_PORT": "0"}
        super().__init__(
            RunnerSettings.from_env({**base, "COMMIT_INTERVAL_MS": "10", **env}),
            registry=CollectorRegistry(),
            consumer_factory=consumer,
            producer_factory=lambda _: self.producer,
        )

    def process(self, message: Message) -> None:
        self.processed.append(message.offset)

    def committed(self) -> dict[int, int]:
        return self.fake.committed if self.fake is not None else {}


class BatchRunner(Runner):
    def process_batch(self, messages: list[Message]) -> None:
        self.processed.extend(message.offset for message in messages)


RUNNERS: dict[str, Callable[[], Runner]] = {
    "sequential": lambda: Runner(LOG_LEVEL="DEBUG"),
    "workers": lambda: Runner(LOG_LEVEL="DEBUG", MAX_CONCURRENCY="4"),
    "batches": lambda: BatchRunner(LOG_LEVEL="DEBUG", BATCH_SIZE="3"),
}


@pytest.mark.parametrize("make", RUNNERS.values(), ids=RUNNERS.keys())
def test_records_replayed_for_another_group_are_committed_past_without_being_read(make: Callable[[], Runner]) -> None:
    runner = make()
    with capture_logs() as events, running(runner):
        wait_until(lambda: runner.committed() == {0: 8}, what="the commit past every record")

    assert sorted(runner.processed) == PROCESSED
    assert runner.producer.produced == [], "nothing dead-lettered: the unreadable record was for another group"
    assert runner.registry.get_sample_value(SKIPPED, SKIP_LABELS) == 2
    skipped = [e for e in events if e["event"] == "record replayed for another group skipped"]
    assert [(e["level"], e["offset"], e["replay_group"]) for e in skipped] == [
        ("debug", 1, "audit"),
        ("debug", 5, "audit"),
    ]
    said = [e for e in events if e["event"].startswith("skipping records replayed for other consumer groups")]
    assert [(e["level"], e["topic"]) for e in said] == [("info", TOPIC)], "said once per topic at INFO"


def test_at_info_a_skipped_record_is_only_counted() -> None:
    runner = Runner()
    with capture_logs() as events, running(runner):
        wait_until(lambda: runner.committed() == {0: 8}, what="the commit past every record")

    assert runner.registry.get_sample_value(SKIPPED, SKIP_LABELS) == 2
    assert not [e for e in events if e["event"] == "record replayed for another group skipped"]


@pytest.mark.parametrize(
    ("headers", "other"),
    [
        ((), None),
        ((("tenant", b"t"),), None),
        ((("dlq.replay.group", b"enrich"),), None),
        ((("dlq.replay.group", b"audit"),), b"audit"),
        ((("dlq.replay.group", b""),), None),
        ((("dlq.replay.group", None),), None),
        ((("dlq.replay.group", b"enrich"), ("dlq.replay.group", b"audit")), b"audit"),
        ((("dlq.replay.group", b"audit"), ("dlq.replay.group", b"enrich")), None),
        ((("dlq.replay.group", b"Enrich"),), b"Enrich"),
    ],
    ids=["none", "others", "own", "other", "empty", "null", "last-other", "last-own", "case"],
)
def test_the_last_replay_group_header_decides_and_an_empty_one_names_nobody(
    headers: tuple[tuple[str, bytes | None], ...], other: bytes | None
) -> None:
    assert ReplayScope(GROUP).other_group(headers) == other
