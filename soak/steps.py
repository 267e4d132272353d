"""Steps the scenarios share: topics, waiting for a consumer group to finish, and judging the outcome."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from confluent_kafka import Consumer, TopicPartition

from neotool_common.testing.harness import committed_offsets
from neotool_common.testing.kafka import KafkaEndpoint
from soak.faults import Fleet
from soak.invariants import Verdict, judge, read_dlq
from soak.ledger import EventKind, Ledger
from soak.scenario import ScenarioRun
from soak.workload import Produced

__all__ = ["conclude", "create_topics", "end_offsets", "wait_committed"]


def create_topics(
    endpoint: KafkaEndpoint,
    scenario: ScenarioRun,
    partitions: int,
    *,
    config: Mapping[str, str] | None = None,
    dlq: bool = True,
    dlq_config: Mapping[str, str] | None = None,
) -> str:
    """A fresh source topic named after the scenario, and its ``.dlq`` topic unless ``dlq`` is false.

    The scenario's clock starts here, once its brokers are up.
    """
    scenario.restart_clock()
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", scenario.title).strip("-")[:60].lower()
    topic = f"soak.{slug}.{uuid.uuid4().hex[:6]}"
    endpoint.create_topic(topic, partitions, config=dict(config or {}))
    if dlq:
        endpoint.create_topic(topic + ".dlq", partitions, config=dict(dlq_config or config or {}))
    return topic


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The high watermark of every partition of ``topic``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ends-{uuid.uuid4().hex[:8]}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        consumer.close()


def ledger_committed(ledger: Ledger, topic: str) -> dict[int, int]:
    """The highest offset per partition whose commit the ledger saw accepted."""
    positions: dict[int, int] = {}
    for event in ledger.events(EventKind.COMMIT_OK):
        if event.topic == topic and event.partition is not None and event.offset is not None:
            positions[event.partition] = max(positions.get(event.partition, -1), event.offset)
    return positions


def wait_committed(
    fleet: Fleet, bootstrap: str, group: str, topic: str, ends: Mapping[int, int], timeout: float
) -> None:
    """Wait until the group has committed ``ends`` on every partition (first by the ledger, then the broker)."""

    def done() -> bool:
        seen = ledger_committed(fleet.ledger, topic)
        return all(seen.get(p, 0) >= end for p, end in ends.items() if end > 0)

    fleet.watch(done, f"group {group} to commit {dict(ends)}", timeout=timeout)
    committed = committed_offsets(bootstrap, group, topic, len(ends))
    assert all(committed[p] >= end for p, end in ends.items() if end > 0), f"committed {committed}, ends {ends}"


def conclude(
    scenario: ScenarioRun, produced: Produced, bootstrap: str, topic: str, *, allowed_valid_in_dlq: int = 0
) -> Verdict:
    """Read D, judge the run against P and the ledger, and record the verdict for the report."""
    verdict = judge(
        produced, scenario.ledger, read_dlq(bootstrap, topic), topic, allowed_valid_in_dlq=allowed_valid_in_dlq
    )
    return scenario.finish(verdict)
