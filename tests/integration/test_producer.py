"""EnvelopeProducer against the real broker: envelopes arrive intact, refused records wait in the spool."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer

from neotool_common.config.connection import KafkaConnection
from neotool_common.producing.producer import Acknowledgement, DeliveryReport, EnvelopeProducer
from neotool_common.producing.spool import Spool
from neotool_common.testing.kafka import KafkaEndpoint

pytestmark = pytest.mark.kafka

RECORDS = 60
READ_DEADLINE_S = 30.0
# Short enough that a record for a missing topic fails fast, long enough for a healthy local broker.
SHORT_DELIVERY_TIMEOUT_MS = 1_500


def read_back(
    kafka: KafkaEndpoint, topic: str, count: int
) -> list[tuple[int, int, bytes | None, bytes | None, dict[str, bytes]]]:
    """(partition, offset, key, value, headers) of the first ``count`` records, or fail at the deadline."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"read-back-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: list[tuple[int, int, bytes | None, bytes | None, dict[str, bytes]]] = []
    deadline = time.monotonic() + READ_DEADLINE_S
    try:
        while len(seen) < count and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=count, timeout=0.5):
                assert message.error() is None, message.error()
                headers = {name: value for name, value in message.headers() or [] if value is not None}
                seen.append((message.partition(), message.offset(), message.key(), message.value(), headers))
    finally:
        consumer.close()
    assert len(seen) == count, f"read {len(seen)} of {count} records from {topic}"
    return seen


def connect(kafka: KafkaEndpoint) -> KafkaConnection:
    return KafkaConnection.from_env({"KAFKA_BROKERS": kafka.bootstrap_servers})


def test_envelopes_arrive_with_their_keys_headers_and_fields(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=3)
    acknowledged: list[Acknowledgement] = []
    with EnvelopeProducer(connect(kafka), on_acknowledged=acknowledged.append) as producer:
        sent = [
            producer.publish(topic, {"n": n, "name": f"person {n}"}, record_id=f"person-{n}", headers={"seq": str(n)})
            for n in range(RECORDS)
        ]
        assert producer.flush(30) == DeliveryReport(delivered=RECORDS)

    records = read_back(kafka, topic, RECORDS)

    by_key = {key: (value, headers) for _, _, key, value, headers in records}
    assert len(by_key) == RECORDS
    for n, envelope in enumerate(sent):
        value, headers = by_key[f"person-{n}".encode()]
        assert orjson.loads(value or b"") == envelope
        assert headers == {"seq": str(n).encode()}
        assert envelope["payload"] == {"n": n, "name": f"person {n}"}
        assert envelope["batch_id"] == producer.batch_id
        assert datetime.fromisoformat(envelope["ingested_at"]).utcoffset() is not None
    assert {(a.partition, a.offset, a.key) for a in acknowledged} == {(p, o, k) for p, o, k, _, _ in records}
    assert all(a.topic == topic for a in acknowledged)
    assert len({p for p, _, _, _, _ in records}) > 1, "keys spread over the partitions"


def test_a_record_for_a_missing_topic_is_spooled_and_resent_once_the_topic_exists(
    kafka: KafkaEndpoint, topic_name: str, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    quick = {"delivery.timeout.ms": SHORT_DELIVERY_TIMEOUT_MS}
    with EnvelopeProducer(connect(kafka), spool=spool, extra_config=quick) as producer:
        envelopes = [
            producer.publish(topic_name, {"n": n}, record_id=f"r-{n}", headers={"n": str(n)}) for n in range(3)
        ]
        report = producer.flush(SHORT_DELIVERY_TIMEOUT_MS / 1000 + 20)

    assert report == DeliveryReport(failed=3, spooled=3)
    spooled = spool.records()
    assert [(r.topic, r.key, r.headers) for r in spooled] == [
        (topic_name, f"r-{n}".encode(), (("n", str(n).encode()),)) for n in range(3)
    ]
    assert all(r.error for r in spooled)

    kafka.create_topic(topic_name, 1)
    acknowledged: list[Acknowledgement] = []
    with EnvelopeProducer(
        connect(kafka), spool=Spool(tmp_path / "spool"), on_acknowledged=acknowledged.append
    ) as later:
        assert later.resend_spooled(30) == 3

    assert spool.records() == []
    assert sorted(a.key or b"" for a in acknowledged) == [b"r-0", b"r-1", b"r-2"]
    records = read_back(kafka, topic_name, 3)
    assert [(key, orjson.loads(value or b""), headers) for _, _, key, value, headers in records] == [
        (f"r-{n}".encode(), envelopes[n], {"n": str(n).encode()}) for n in range(3)
    ]
