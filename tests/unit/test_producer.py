"""EnvelopeProducer against an in-memory producer: settings, envelopes, and where every failure ends up."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException
from structlog.testing import capture_logs

from neotool_common.config.connection import KafkaConnection
from neotool_common.errors import ConfigurationError
from neotool_common.producing.producer import (
    Acknowledgement,
    DeliveryError,
    DeliveryReport,
    EnvelopeProducer,
    check_producer_config,
)
from neotool_common.producing.spool import SPOOL_DIR_ENV, Spool, SpooledRecord
from neotool_common.testing.fakes import FakeProducer

NOW = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)
TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT)
PASSWORD = "pa55-w0rd-that-must-not-leak"


class FakeClock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now.timestamp()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


def connection(**env: str) -> KafkaConnection:
    return KafkaConnection.from_env({"KAFKA_BROKERS": "127.0.0.1:9092", **env})


def make(
    spool: Spool | None = None, conn: KafkaConnection | None = None, **options: Any
) -> tuple[EnvelopeProducer, FakeProducer, list[Acknowledgement]]:
    fakes: list[FakeProducer] = []
    acknowledged: list[Acknowledgement] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        fakes.append(FakeProducer(config))
        return fakes[-1]

    producer = EnvelopeProducer(
        conn or connection(),
        spool=spool,
        on_acknowledged=acknowledged.append,
        clock=FakeClock(),
        producer_factory=factory,
        **options,
    )
    return producer, fakes[0], acknowledged


# -- settings -------------------------------------------------------------------------------------


def test_the_client_gets_the_settings_of_the_standard() -> None:
    _, fake, _ = make()

    assert fake.config["acks"] == "all"
    assert fake.config["enable.idempotence"] is True
    assert fake.config["compression.type"] in {"zstd", "snappy"}
    assert int(fake.config["linger.ms"]) <= 10
    assert int(fake.config["retries"]) >= 5
    assert fake.config["bootstrap.servers"] == "127.0.0.1:9092"


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"linger.ms": 50}, "linger.ms"),
        ({"queue.buffering.max.ms": "50"}, "queue.buffering.max.ms"),
        ({"acks": "1"}, "acks"),
        ({"request.required.acks": 0}, "request.required.acks"),
        ({"enable.idempotence": "false"}, "enable.idempotence"),
        ({"compression.type": "gzip"}, "compression.type"),
        ({"retries": 3}, "retries"),
        ({"retries": "many"}, "retries"),
    ],
)
def test_an_override_that_breaks_the_standard_is_refused(override: dict[str, object], setting: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make(extra_config=override)
    assert caught.value.setting == setting
    assert "§4.3" in caught.value.problem


def test_a_missing_setting_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"acks: is not set"):
        check_producer_config({"enable.idempotence": True, "compression.type": "zstd", "linger.ms": 5, "retries": 9})


def test_snappy_and_a_shorter_linger_are_fine() -> None:
    _, fake, _ = make(extra_config={"compression.type": "snappy", "linger.ms": 0})
    assert (fake.config["compression.type"], fake.config["linger.ms"]) == ("snappy", 0)


def test_the_environment_wins_over_extra_config() -> None:
    conn = connection(KAFKA_CONFIG_DELIVERY_TIMEOUT_MS="5000", KAFKA_CONFIG_LINGER_MS="20")
    with pytest.raises(ConfigurationError, match=r"linger\.ms"):
        make(conn=conn, extra_config={"linger.ms": 1})

    _, fake, _ = make(conn=connection(KAFKA_CONFIG_DELIVERY_TIMEOUT_MS="5000"), extra_config={"delivery.timeout.ms": 1})
    assert fake.config["delivery.timeout.ms"] == "5000"


# -- publishing -----------------------------------------------------------------------------------


def test_publish_sends_an_envelope_keyed_by_record_id() -> None:
    producer, fake, acknowledged = make()

    envelope = producer.publish(
        "people.ingest.v1", {"name": "Ada", "n": 1}, record_id="person-1", headers={"trace": "t-1", "none": None}
    )

    (sent,) = fake.log
    assert orjson.loads(sent.value or b"") == envelope
    assert envelope == {
        "batch_id": producer.batch_id,
        "record_id": "person-1",
        "ingested_at": "2024-05-01T12:00:00.250000Z",
        "payload": {"name": "Ada", "n": 1},
    }
    assert sent.key == b"person-1"
    assert sent.headers == [("trace", b"t-1"), ("none", None)]
    assert acknowledged == [Acknowledgement("people.ingest.v1", 0, 0, b"person-1")]


def test_publish_takes_a_batch_id_a_key_and_header_pairs() -> None:
    producer, fake, _ = make()
    batch = "0190e8a4-1a2b-7c3d-8e4f-0123456789ab"

    envelope = producer.publish(
        "t", {}, record_id="r", batch_id=batch, key="domain-7", headers=[("h", b"1"), ("h", b"2")]
    )

    assert envelope["batch_id"] == batch
    assert fake.log[0].key == b"domain-7"
    assert fake.log[0].headers == [("h", b"1"), ("h", b"2")]


def test_a_bad_envelope_raises_and_queues_nothing() -> None:
    producer, fake, _ = make()

    with pytest.raises(ValueError, match="record_id"):
        producer.publish("t", {"a": 1}, record_id="")
    with pytest.raises(TypeError):
        producer.publish("t", {1: "non-string key"}, record_id="r")  # type: ignore[dict-item]

    assert fake.log == []
    assert len(producer) == 0


def test_publish_raw_sends_bytes_as_they_are() -> None:
    producer, fake, _ = make()

    producer.publish_raw("t", b"\xff not json", key=b"k")
    producer.publish_raw("t", None)

    assert [(p.value, p.key, p.headers) for p in fake.log] == [(b"\xff not json", b"k", None), (None, None, None)]
    assert producer.flush().delivered == 2


def test_a_full_queue_waits_for_room_instead_of_failing() -> None:
    producer, fake, _ = make()
    fake.full_for = 3

    producer.publish_raw("t", b"v")

    assert producer.flush() == DeliveryReport(delivered=1)


def test_flush_reports_since_the_last_report_and_totals_keep_counting(tmp_path: Path) -> None:
    producer, fake, _ = make(spool=Spool(tmp_path))
    fake.failing.add("down")
    for n in range(3):
        producer.publish("up", {"n": n}, record_id=f"r{n}")
    producer.publish("down", {}, record_id="x")

    assert producer.flush() == DeliveryReport(delivered=3, failed=1, spooled=1)
    producer.publish("up", {}, record_id="r9")
    assert producer.flush() == DeliveryReport(delivered=1)
    assert producer.totals == DeliveryReport(delivered=4, failed=1, spooled=1)


def test_records_not_yet_answered_are_pending() -> None:
    producer, fake, _ = make()
    fake.hold = True
    producer.publish("t", {}, record_id="r")

    assert producer.flush(0) == DeliveryReport(pending=1)
    assert len(producer) == 1
    fake.hold = False
    assert producer.flush() == DeliveryReport(delivered=1)


# -- final failures -------------------------------------------------------------------------------


def test_a_final_failure_lands_in_the_spool_with_its_metadata(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    producer, fake, acknowledged = make(spool=spool)
    fake.failing.add("people.ingest.v1")

    producer.publish("people.ingest.v1", {"n": 1}, record_id="r-1", headers={"trace": "t"})
    report = producer.flush()

    assert report == DeliveryReport(failed=1, spooled=1)
    assert report.unspooled == 0
    (spooled,) = spool.records()
    assert spooled.topic == "people.ingest.v1"
    assert spooled.key == b"r-1"
    assert spooled.value == fake.log[0].value
    assert spooled.headers == (("trace", b"t"),)
    assert spooled.error == "_MSG_TIMED_OUT: Local: Message timed out"
    assert spooled.failed_at == NOW
    assert acknowledged == []


def test_without_a_spool_a_final_failure_raises_with_the_counts() -> None:
    producer, fake, _ = make()
    fake.failing.add("down")
    producer.publish("up", {}, record_id="ok")
    producer.publish("down", {}, record_id="lost-1")
    producer.publish("down", {}, record_id="lost-2")

    with pytest.raises(DeliveryError) as caught:
        producer.flush()

    assert caught.value.report == DeliveryReport(delivered=1, failed=2, spooled=0)
    assert caught.value.report.unspooled == 2
    assert [(f.topic, f.key) for f in caught.value.failures] == [("down", b"lost-1"), ("down", b"lost-2")]
    assert "Message timed out" in str(caught.value)
    assert producer.flush() == DeliveryReport(), "reported once"


def test_a_failed_spool_write_raises_too(tmp_path: Path) -> None:
    class FullDisk(Spool):
        def append(self, record: SpooledRecord) -> None:
            raise OSError(28, "No space left on device")

    producer, fake, _ = make(spool=FullDisk(tmp_path))
    fake.failing.add("down")
    producer.publish("down", {}, record_id="r")

    with pytest.raises(DeliveryError, match="spool write failed too") as caught:
        producer.flush()
    assert caught.value.report == DeliveryReport(failed=1, spooled=0)


def test_a_record_refused_before_queueing_is_a_final_failure(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    producer, fake, _ = make(spool=spool)
    fake.refuse_next = KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))

    producer.publish_raw("t", b"x" * 64, key="big")

    assert producer.flush() == DeliveryReport(failed=1, spooled=1)
    assert [(r.key, r.error.split(":")[0]) for r in spool.records()] == [(b"big", "MSG_SIZE_TOO_LARGE")]


def test_close_gives_up_on_unanswered_records_into_the_spool(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    producer, fake, _ = make(spool=spool)
    fake.hold = True
    producer.publish("t", {}, record_id="r")

    assert producer.close(0.1) == DeliveryReport(failed=1, spooled=1)
    assert [r.key for r in spool.records()] == [b"r"]
    assert "close()" in spool.records()[0].error
    fake.hold = False
    assert fake.flush() == 0
    assert producer.totals == DeliveryReport(failed=1, spooled=1), "a late answer changes nothing"


def test_close_without_a_spool_raises_for_unanswered_records() -> None:
    producer, fake, _ = make()
    fake.hold = True
    producer.publish("t", {}, record_id="r")

    with pytest.raises(DeliveryError) as caught:
        producer.close(0.1)
    assert caught.value.report.unspooled == 1


def test_a_closed_producer_refuses_work_and_closes_once() -> None:
    producer, _, _ = make()
    producer.close()

    with pytest.raises(RuntimeError, match="closed"):
        producer.publish("t", {}, record_id="r")
    assert producer.close() == DeliveryReport()


def test_leaving_the_with_block_flushes() -> None:
    producer, fake, acknowledged = make()
    fake.answer_on_poll = False
    with producer:
        producer.publish("t", {}, record_id="r")
        assert (len(producer), acknowledged) == (1, [])
    assert producer.totals == DeliveryReport(delivered=1)
    assert [a.key for a in acknowledged] == [b"r"]


# -- re-sending -----------------------------------------------------------------------------------


def spool_with_failures(
    tmp_path: Path, topics: list[str]
) -> tuple[EnvelopeProducer, FakeProducer, Spool, list[Acknowledgement]]:
    spool = Spool(tmp_path)
    producer, fake, acknowledged = make(spool=spool)
    fake.failing.update(topics)
    for n, topic in enumerate(topics):
        producer.publish(topic, {"n": n}, record_id=f"r{n}", headers={"h": str(n)})
    assert producer.flush().spooled == len(topics)
    return producer, fake, spool, acknowledged


def test_resend_delivers_the_spool_and_empties_it(tmp_path: Path) -> None:
    producer, fake, spool, acknowledged = spool_with_failures(tmp_path, ["a", "b"])
    first_tries = list(fake.log)
    fake.failing.clear()

    assert producer.resend_spooled() == 2

    assert spool.records() == []
    resent = fake.log[len(first_tries) :]
    assert [(p.topic, p.value, p.key, p.headers) for p in resent] == [
        (p.topic, p.value, p.key, p.headers) for p in first_tries
    ]
    assert [(a.topic, a.key) for a in acknowledged] == [("a", b"r0"), ("b", b"r1")]
    assert producer.totals == DeliveryReport(failed=2, spooled=2), "re-sends are not new publishes"


def test_resend_keeps_what_fails_again_without_spooling_it_twice(tmp_path: Path) -> None:
    producer, fake, spool, _ = spool_with_failures(tmp_path, ["a", "b"])
    before = spool.records()
    fake.failing.discard("a")

    assert producer.resend_spooled() == 1

    assert spool.records() == [before[1]]
    assert producer.flush() == DeliveryReport()


def test_a_late_acknowledgement_of_a_resend_is_removed_by_the_next_flush(tmp_path: Path) -> None:
    producer, fake, spool, _ = spool_with_failures(tmp_path, ["a"])
    fake.failing.clear()
    fake.hold = True

    assert producer.resend_spooled(0.1) == 0
    assert producer.resend_spooled(0.1) == 0
    assert len(fake.queue) == 1, "a record already being re-sent is not sent twice"
    assert len(spool) == 1

    fake.hold = False
    producer.flush()
    assert len(spool) == 0


def test_resend_without_a_spool_is_a_configuration_error() -> None:
    producer, _, _ = make()
    with pytest.raises(ConfigurationError) as caught:
        producer.resend_spooled()
    assert caught.value.setting == SPOOL_DIR_ENV


def test_from_env_uses_the_spool_directory_when_set(tmp_path: Path) -> None:
    env = {"KAFKA_BROKERS": "127.0.0.1:9092", SPOOL_DIR_ENV: str(tmp_path / "s")}
    fakes: list[FakeProducer] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        fakes.append(FakeProducer(config, failing={"t"}))
        return fakes[-1]

    with EnvelopeProducer.from_env(env, producer_factory=factory) as producer:
        producer.publish("t", {}, record_id="r")
    assert len(Spool(tmp_path / "s")) == 1

    bare = EnvelopeProducer.from_env({"KAFKA_BROKERS": "127.0.0.1:9092"}, producer_factory=factory)
    with bare, pytest.raises(ConfigurationError):
        bare.resend_spooled()


# -- secrets --------------------------------------------------------------------------------------


def test_no_secret_reaches_the_logs(tmp_path: Path) -> None:
    conn = connection(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        KAFKA_SASL_USERNAME="svc",
        KAFKA_SASL_PASSWORD=PASSWORD,
        KAFKA_CONFIG_SASL_OAUTHBEARER_CONFIG=f"clientSecret={PASSWORD}",
    )
    with capture_logs() as events:
        producer, fake, _ = make(spool=Spool(tmp_path), conn=conn)
        fake.failing.add("down")
        producer.publish("down", {}, record_id="r")
        producer.flush()
        producer.close()

    assert fake.config["sasl.password"] == PASSWORD, "the client itself does get it"
    assert {e["event"] for e in events} >= {"producer.created", "producer.record_spooled"}
    created = next(e for e in events if e["event"] == "producer.created")
    assert created["acks"] == "all"
    assert created["security_protocol"] == "SASL_SSL"
    assert PASSWORD not in repr(events)
