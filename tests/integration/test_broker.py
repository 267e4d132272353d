"""The test broker is a real Kafka: partitions, acks=all, idempotence, groups and committed offsets."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Producer, TopicPartition

from neotool_common.testing.kafka import KafkaEndpoint

RECORDS = 1_000


def produce_keyed(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    failures: list[str] = []

    def on_delivery(err: object, msg: object) -> None:
        if err is not None:
            failures.append(str(err))

    for i in range(count):
        producer.produce(topic, key=f"key-{i % 37}", value=f"value-{i}", on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert failures == []


def consume(bootstrap: str, topic: str, group: str, stop_after: int) -> list[tuple[int, int, bytes]]:
    """Read up to ``stop_after`` records, committing exactly the offsets read after each poll batch."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([topic])
    seen: list[tuple[int, int, bytes]] = []
    eof: set[int] = set()
    try:
        while len(seen) < stop_after and len(eof) < 3:
            for msg in consumer.consume(num_messages=100, timeout=1.0):
                if msg.error():
                    eof.add(msg.partition())
                    continue
                eof.discard(msg.partition())
                seen.append((msg.partition(), msg.offset(), msg.value()))
                if len(seen) >= stop_after:
                    break
            if seen:
                next_offsets: dict[int, int] = {}
                for partition, offset, _ in seen:
                    next_offsets[partition] = offset + 1
                consumer.commit(
                    offsets=[TopicPartition(topic, p, o) for p, o in next_offsets.items()], asynchronous=False
                )
    finally:
        consumer.close()
    return seen


def test_keyed_records_survive_a_consumer_restart(kafka: KafkaEndpoint, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=3)
    produce_keyed(kafka.bootstrap_servers, topic, RECORDS)
    group = f"g-{uuid.uuid4().hex[:8]}"

    first = consume(kafka.bootstrap_servers, topic, group, stop_after=400)
    second = consume(kafka.bootstrap_servers, topic, group, stop_after=RECORDS)

    values = [v for _, _, v in first + second]
    assert len(values) == RECORDS, "the restarted consumer resumed from the committed offsets"
    assert {v.decode() for v in values} == {f"value-{i}" for i in range(RECORDS)}
    assert {p for p, _, _ in first + second} == {0, 1, 2}


def test_same_key_lands_in_one_partition(kafka: KafkaEndpoint, make_topic: Callable[..., str]) -> None:
    topic = make_topic(partitions=3)
    produce_keyed(kafka.bootstrap_servers, topic, 200)
    records = consume(kafka.bootstrap_servers, topic, f"g-{uuid.uuid4().hex[:8]}", stop_after=200)
    partition_of_value = {v: p for p, _, v in records}
    by_key: dict[int, set[int]] = {}
    for i in range(200):
        by_key.setdefault(i % 37, set()).add(partition_of_value[f"value-{i}".encode()])
    assert all(len(parts) == 1 for parts in by_key.values())
