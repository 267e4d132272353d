"""Publishing a batch through EnvelopeProducer (an in-memory producer): the manifest counts every record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from neotool_common.batches import BatchManifest
from neotool_common.config.connection import KafkaConnection
from neotool_common.producing.delivery import DeliveryError
from neotool_common.producing.producer import EnvelopeProducer
from neotool_common.producing.spool import Spool
from neotool_common.testing.fakes import FakeProducer

TOPIC = "people.v1"


def make(spool: Spool | None = None) -> tuple[EnvelopeProducer, FakeProducer]:
    fakes: list[FakeProducer] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        fakes.append(FakeProducer(config))
        return fakes[-1]

    connection = KafkaConnection.from_env({"KAFKA_BROKERS": "127.0.0.1:9092"})
    return EnvelopeProducer(connection, spool=spool, producer_factory=factory), fakes[0]


def manifests(fake: FakeProducer) -> list[BatchManifest]:
    return [BatchManifest.decode(p.value or b"") for p in fake.log if p.topic == TOPIC + ".batches"]


def test_the_manifest_follows_every_acknowledged_record_and_names_their_offsets() -> None:
    producer, fake = make()
    fake.offsets[TOPIC] = 40  # other records came before
    with producer.batch(TOPIC) as batch:
        for n in range(5):
            envelope = batch.publish({"n": n}, record_id=f"r{n}")
            assert envelope["batch_id"] == batch.batch_id
        batch.publish_raw(b"\xff not json", key=b"poison")
    (manifest,) = manifests(fake)
    assert manifest == batch.manifest
    assert [p.topic for p in fake.log][-1] == TOPIC + ".batches"  # after every record
    assert fake.log[-1].key == f"{batch.batch_id}/0".encode()
    assert (manifest.records, manifest.complete, manifest.expected_parts) == (6, True, 1)
    assert manifest.partitions[0].runs == ((40, 45),)
    assert orjson.loads(fake.log[-1].value or b"")["partitions"]["0"]["first_offset"] == 40


def test_spooled_records_are_in_the_manifest_as_spooled(tmp_path: Path) -> None:
    producer, fake = make(Spool(tmp_path))
    batch = producer.batch(TOPIC)
    batch.publish({"n": 1}, record_id="ok")
    fake.failing.add(TOPIC)
    batch.publish({"n": 2}, record_id="refused")
    producer.flush(0)
    fake.failing.clear()
    manifest = batch.close()
    assert (manifest.acknowledged, manifest.spooled, manifest.lost, manifest.complete) == (1, 1, 0, False)


def test_lost_records_are_counted_and_the_manifest_is_still_published() -> None:
    producer, fake = make()
    batch = producer.batch(TOPIC)
    fake.failing.add(TOPIC)
    batch.publish({"n": 1}, record_id="refused")
    with pytest.raises(DeliveryError):
        batch.close()
    (manifest,) = manifests(fake)
    assert (manifest.records, manifest.lost) == (1, 1)


def test_a_body_that_raises_publishes_no_manifest() -> None:
    producer, fake = make()

    def publish_and_fail() -> None:
        with producer.batch(TOPIC) as batch:
            batch.publish({"n": 1}, record_id="a")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        publish_and_fail()
    assert manifests(fake) == []


def test_parts_of_one_batch_need_names_and_share_the_batch_id() -> None:
    producer, fake = make()
    with pytest.raises(ValueError, match="part name"):
        producer.batch(TOPIC, expected_parts=2)
    shared = producer.batch(TOPIC, part="a", expected_parts=2).batch_id
    with producer.batch(TOPIC, batch_id=shared, part="b", expected_parts=2) as second:
        second.publish({"n": 1}, record_id="b1")
    (manifest,) = manifests(fake)
    assert (manifest.batch_id, manifest.part, manifest.expected_parts) == (shared, "b", 2)


def test_a_closed_batch_takes_no_more_records() -> None:
    producer, _ = make()
    with producer.batch(TOPIC) as batch:
        batch.publish({"n": 1}, record_id="a")
    assert batch.close() is batch.manifest
    with pytest.raises(RuntimeError, match="closed"):
        batch.publish({"n": 2}, record_id="b")
