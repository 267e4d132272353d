"""The start of a run: its effective settings in one line, every bad KAFKA_CONFIG_* at once, librdkafka's lines."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry

from neotool_common.config.client_logs import CLIENT_LOG, ClientLog, Repeat, RepeatLimiter
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer.startup import make_client
from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.errors import ConfigurationError, ConfigurationErrors
from neotool_common.records.message import Message
from neotool_common.testing.fakes import FakeConsumer, FakeProducer
from neotool_common.testing.harness import running, wait_until
from neotool_common.testing.logs import capture_logs

TOPIC = "bank.v1"
BASE = {"KAFKA_BROKERS": "127.0.0.1:9", "KAFKA_TOPICS": TOPIC, "KAFKA_GROUP_ID": "g", "METRICS_PORT": "0"}


class Quiet(KafkaConsumerRunner):
    def __init__(self, values: list[bytes] | None = None, **env: str) -> None:
        self.fake: FakeConsumer | None = None
        self.producer = FakeProducer({})

        def consumer(config: dict[str, Any]) -> FakeConsumer:
            self.fake = FakeConsumer(config, TOPIC, {0: values or []})
            return self.fake

        super().__init__(
            RunnerSettings.from_env({**BASE, **env}, defaults_from=type(self)),
            registry=CollectorRegistry(),
            consumer_factory=consumer,
            producer_factory=lambda _: self.producer,
        )

    def process(self, message: Message) -> None:
        pass


def test_the_start_line_carries_the_effective_settings_with_secrets_masked() -> None:
    runner = Quiet(MAX_CONCURRENCY="8", ORDERING="key", RETRY_MAX_ATTEMPTS="7", KAFKA_CONFIG_SASL_PASSWORD="hunter2")
    with capture_logs("INFO") as events, running(runner):
        wait_until(lambda: any(e["event"] == "consumer started" for e in events), what="the start")
    (start,) = [e for e in events if e["event"] == "consumer starting"]
    assert start["level"] == "info"
    assert (start["max_concurrency"], start["ordering"], start["retry_max_attempts"]) == (8, "key", 7)
    assert start["brokers"] == "127.0.0.1:9"
    assert (start["topics"], start["dlq_topics"], start["retry_topics"]) == ([TOPIC], [TOPIC + ".dlq"], [])
    assert (start["group_protocol"], start["assignor"]) == ("classic", "cooperative-sticky")
    assert start["commit_interval_ms"] == 1000
    assert start["metrics"] == "off"
    assert start["kafka_config"]["sasl.password"] == "***"
    assert "hunter2" not in repr(events)


def test_stop_and_the_end_of_draining_are_logged_with_how_long_it_took() -> None:
    runner = Quiet()
    with capture_logs("INFO") as events, running(runner):
        wait_until(lambda: any(e["event"] == "consumer started" for e in events), what="the start")
    names = [e["event"] for e in events]
    assert names.index("stop requested; draining") < names.index("consumer stopped")
    (stopped,) = [e for e in events if e["event"] == "consumer stopped"]
    assert stopped["drained_in_s"] >= 0


def test_every_bad_kafka_config_setting_is_named_at_once_by_its_variable() -> None:
    env = {**BASE, "KAFKA_CONFIG_FOO_BAR": "1", "KAFKA_CONFIG_FETCH_MAX_BYTES": "lots", "KAFKA_CONFIG_CLIENT_RACK": "r"}
    settings = RunnerSettings.from_env(env)
    with pytest.raises(ConfigurationErrors) as raised:
        make_client(Consumer, {**settings.consumer_config(), "log_level": 0}, settings)
    by_variable = {error.setting: error.problem for error in raised.value.errors}
    assert set(by_variable) == {"KAFKA_CONFIG_FOO_BAR", "KAFKA_CONFIG_FETCH_MAX_BYTES"}
    assert "no setting 'foo.bar'" in by_variable["KAFKA_CONFIG_FOO_BAR"]
    assert "'lots' is not a valid value" in by_variable["KAFKA_CONFIG_FETCH_MAX_BYTES"]
    assert "KafkaError" not in str(raised.value)
    assert len(str(raised.value).splitlines()) == 2


def test_the_exit_code_is_2_with_one_line_per_bad_setting_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    class Plain(KafkaConsumerRunner):
        def process(self, message: Message) -> None:
            pass

    env = {**BASE, "KAFKA_CONFIG_FOO_BAR": "1", "KAFKA_CONFIG_BAZ_QUX": "2"}
    runner = Plain(RunnerSettings.from_env(env), registry=CollectorRegistry())
    assert runner.run_to_exit_code() == 2
    lines = capsys.readouterr().err.splitlines()
    errors = [line for line in lines if "configuration error" in line]
    assert len(errors) == 2, lines
    assert any("KAFKA_CONFIG_FOO_BAR" in line for line in errors)
    assert any("KAFKA_CONFIG_BAZ_QUX" in line for line in errors)


def test_a_configuration_errors_group_keeps_each_one() -> None:
    group = ConfigurationErrors([ConfigurationError("A", "bad"), ConfigurationError("B", "worse")])
    assert (group.setting, str(group)) == ("A", "A: bad\nB: worse")
    assert isinstance(group, ConfigurationError)


# -- librdkafka's own lines ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_repeated_line_is_written_once_per_window_with_the_count_folded_into_it() -> None:
    clock = Clock()
    limiter = RepeatLimiter(30.0, clock)
    admitted = []
    for _ in range(100):  # one a second for 100 s
        admitted.append(limiter.admit("FAIL"))
        clock.now += 1
    written = [(i, r) for i, r in enumerate(admitted) if r is not None]
    assert [i for i, _ in written] == [0, 30, 60, 90]
    assert [r.repeats for _, r in written] == [1, 30, 30, 30]
    assert written[-1][1].for_s == 90
    clock.now += 31
    fresh = limiter.admit("FAIL")
    assert fresh == Repeat(repeats=1, for_s=0.0), "a key quiet for a whole window starts afresh"
    assert limiter.admit("other") is not None


def test_librdkafka_lines_become_events_with_a_level_facility_and_client() -> None:
    log = ClientLog(limiter=RepeatLimiter(30.0, Clock()))
    with capture_logs("DEBUG") as events:
        for _ in range(50):
            log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", "Connect to ipv4#127.0.0.1:1 failed")
        log.log(logging.WARNING, "%s [%s] %s", "GETPID", "rdkafka#producer-2", "Failed to acquire PID")
    assert [(e["level"], e["facility"], e["client"], e["logger"]) for e in events] == [
        ("warning", "FAIL", "rdkafka#consumer-1", "librdkafka"),
        ("warning", "GETPID", "rdkafka#producer-2", "librdkafka"),
    ]
    assert events[0]["librdkafka_level"] == "error", "its error reaches error_cb, which logs the ERROR line"
    assert "librdkafka_level" not in events[1]


def test_every_client_of_a_connection_gets_the_structured_log() -> None:
    settings = RunnerSettings.from_env(BASE)
    assert settings.consumer_config()["logger"] is CLIENT_LOG
    assert settings.dlq_producer_config()["logger"] is CLIENT_LOG
    assert settings.connection.client_config()["logger"] is CLIENT_LOG


def test_a_validation_dead_letter_line_carries_the_ids_the_decoded_object_has() -> None:
    invalid = json.dumps({"batch_id": "b-7", "record_id": "r-7", "payload": {}}).encode()  # no ingested_at
    not_strings = json.dumps({"batch_id": 7, "record_id": ["r"], "payload": {}}).encode()
    runner = Quiet([invalid, not_strings])
    with capture_logs("INFO") as events, running(runner):
        wait_until(lambda: len(runner.producer.produced) == 2, what="both dead-lettered")
    first, second = [e for e in events if e["event"] == "dead-lettering record"]
    assert (first["reason"], first["batch_id"], first["record_id"]) == ("validation", "b-7", "r-7")
    assert "batch_id" not in second
    assert second["record_id"] is None
