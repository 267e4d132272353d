"""Structured logging: JSON lines, levels, stdlib routing, secret redaction, trace ids and the capture kit."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from neotool_common.config.connection import Secret
from neotool_common.errors import ConfigurationError
from neotool_common.observability import logs
from neotool_common.testing.logs import capture_logs

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    logs.reset_logging()
    yield
    structlog.contextvars.clear_contextvars()
    logs.reset_logging()


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_timestamp_level_event_and_logger(stream: io.StringIO) -> None:
    logs.configure_logging(stream=stream)
    log = logs.get_logger("neotool.runner")

    log.info("record.processed", topic="people.ingest.v1", partition=2, offset=41)
    log.warning("rebalance.revoked", partitions=[0, 1])

    first, second = lines(stream)
    assert first["event"] == "record.processed"
    assert first["level"] == "info"
    assert first["logger"] == "neotool.runner"
    assert (first["topic"], first["partition"], first["offset"]) == ("people.ingest.v1", 2, 41)
    stamp = datetime.fromisoformat(first["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=1)
    assert (second["level"], second["partitions"]) == ("warning", [0, 1])


def test_a_logger_made_before_configuration_follows_it(stream: io.StringIO) -> None:
    early = logs.get_logger("neotool.runner", group="people-loader", task_name="load")

    logs.configure_logging(stream=stream)
    early.info("consumer.started")

    (event,) = lines(stream)
    assert (event["logger"], event["group"], event["task_name"]) == ("neotool.runner", "people-loader", "load")


def test_context_bound_by_the_runner_reaches_every_event(stream: io.StringIO) -> None:
    logs.configure_logging(stream=stream)
    structlog.contextvars.bind_contextvars(batch_id="b-1", record_id="r-9", trace_id=TRACE_ID)

    logs.get_logger("neotool.runner").info("record.committed", records_processed=10)

    (event,) = lines(stream)
    assert {"batch_id": "b-1", "record_id": "r-9", "trace_id": TRACE_ID, "records_processed": 10}.items() <= (
        event.items()
    )


def test_levels_below_the_configured_one_are_dropped(stream: io.StringIO) -> None:
    logs.configure_logging("warning", stream=stream)
    log = logs.get_logger("neotool.runner")

    log.debug("d")
    log.info("i")
    log.error("e")
    logging.getLogger("neotool.lib").info("stdlib info")
    logging.getLogger("neotool.lib").error("stdlib error")

    assert [event["event"] for event in lines(stream)] == ["e", "stdlib error"]


def test_the_default_stream_is_stderr_at_the_time_of_writing(monkeypatch: pytest.MonkeyPatch) -> None:
    logs.configure_logging()
    later = io.StringIO()
    monkeypatch.setattr("sys.stderr", later)

    logs.get_logger("x").info("structlog")
    logging.getLogger("lib").warning("stdlib")

    assert [event["event"] for event in lines(later)] == ["structlog", "stdlib"]


def test_level_names_are_case_insensitive(stream: io.StringIO) -> None:
    logs.configure_logging(" debug ", "JSON", stream=stream)
    logs.get_logger("x").debug("visible")
    assert lines(stream)[0]["event"] == "visible"


def test_stdlib_logging_goes_through_the_same_renderer(stream: io.StringIO) -> None:
    logs.configure_logging(stream=stream)

    logging.getLogger("confluent.bridge").warning("broker %s down", "b1:9092")

    (event,) = lines(stream)
    assert event["event"] == "broker b1:9092 down"
    assert (event["level"], event["logger"]) == ("warning", "confluent.bridge")
    assert "timestamp" in event


def test_configuring_again_replaces_the_stdlib_handler(stream: io.StringIO) -> None:
    first = io.StringIO()
    logs.configure_logging(stream=first)
    logs.configure_logging(stream=stream)

    logging.getLogger("neotool.lib").warning("once")

    assert first.getvalue() == ""
    assert [event["event"] for event in lines(stream)] == ["once"]


def test_reset_restores_the_root_logger() -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    logs.configure_logging("DEBUG", stream=io.StringIO())
    assert root.level == logging.DEBUG

    logs.reset_logging()

    assert (root.level, root.handlers) == (level, handlers)
    assert not structlog.is_configured()


def test_exceptions_are_rendered_as_text(stream: io.StringIO) -> None:
    logs.configure_logging(stream=stream)
    try:
        raise RuntimeError("broker unreachable")
    except RuntimeError:
        logs.get_logger("neotool.runner").exception("poll.failed")

    (event,) = lines(stream)
    assert event["level"] == "error"
    assert event["exception"].startswith("Traceback (most recent call last):")
    assert event["exception"].endswith("RuntimeError: broker unreachable")


def test_console_format_is_for_humans(stream: io.StringIO) -> None:
    logs.configure_logging("info", "console", stream=stream)
    logs.register_secret("s3cr3t-value")

    logs.get_logger("neotool.runner").info(
        "record.processed", topic="people.ingest.v1", password="pw", note="s3cr3t-value"
    )

    text = stream.getvalue()
    assert "record.processed" in text
    assert "topic=people.ingest.v1" in text
    assert "[neotool.runner]" in text
    assert "password=***" in text
    assert "s3cr3t-value" not in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


@pytest.mark.parametrize(
    ("setting", "level", "fmt"),
    [("LOG_LEVEL", "verbose", "json"), ("LOG_LEVEL", "", "json"), ("LOG_FORMAT", "INFO", "xml")],
)
def test_bad_configuration_names_the_setting(setting: str, level: str, fmt: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        logs.configure_logging(level, fmt, stream=io.StringIO())
    assert raised.value.setting == setting
    assert not structlog.is_configured()


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "KAFKA_SASL_PASSWORD",
        "sasl.password",
        "ssl.key.password",
        "ssl_key_password",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "Authorization",
        "api_key",
        "apiKey",
        "sasl.jaas.config",
        "private_key",
        "credentials",
    ],
)
def test_secret_looking_keys_are_masked(stream: io.StringIO, key: str) -> None:
    logs.configure_logging(stream=stream)
    logs.get_logger("x").info("config", **{key: "hunter2"})
    assert lines(stream)[0][key] == "***"


@pytest.mark.parametrize("key", ["key", "topic", "partition", "offset", "record_id", "batch_id", "passed"])
def test_ordinary_keys_are_kept(stream: io.StringIO, key: str) -> None:
    logs.configure_logging(stream=stream)
    logs.get_logger("x").info("config", **{key: "value"})
    assert lines(stream)[0][key] == "value"


def test_secret_keys_are_masked_inside_nested_mappings(stream: io.StringIO) -> None:
    logs.configure_logging(stream=stream)
    config = {"bootstrap.servers": "b1:9092", "sasl.password": "pw", "nested": {"ssl.key.password": "kp"}}

    logs.get_logger("x").info("consumer.config", config=config)

    assert lines(stream)[0]["config"] == {
        "bootstrap.servers": "b1:9092",
        "sasl.password": "***",
        "nested": {"ssl.key.password": "***"},
    }
    assert config["sasl.password"] == "pw"  # the caller's object is left alone


def test_registered_secrets_are_masked_wherever_they_appear(stream: io.StringIO) -> None:
    logs.configure_logging(stream=stream)
    logs.register_secret("hunter2")
    logs.register_secret(Secret("k3y-pass"))
    log = logs.get_logger("x")

    log.info("connect failed: hunter2 rejected", detail={"raw": "user=a pass=hunter2"}, tries=["k3y-pass", 3])
    log.info("object", error=ValueError("bad k3y-pass"))
    logging.getLogger("lib").warning("sasl with %s", "hunter2")
    try:
        raise RuntimeError("auth hunter2")
    except RuntimeError:
        log.exception("crash")

    text = stream.getvalue()
    assert "hunter2" not in text
    assert "k3y-pass" not in text
    first, second, third, fourth = lines(stream)
    assert first["event"] == "connect failed: *** rejected"
    assert first["detail"] == {"raw": "user=a pass=***"}
    assert first["tries"] == ["***", 3]
    assert second["error"] == "bad ***"
    assert third["event"] == "sasl with ***"
    assert fourth["exception"].endswith("RuntimeError: auth ***")


def test_a_secret_containing_another_is_masked_whole(stream: io.StringIO) -> None:
    logs.configure_logging(stream=stream)
    logs.register_secret("abc1")
    logs.register_secret("abc123")

    logs.get_logger("x").info("x=abc123; y=abc1")

    assert lines(stream)[0]["event"] == "x=***; y=***"


def test_secrets_are_matched_literally(stream: io.StringIO) -> None:
    logs.configure_logging(stream=stream)
    logs.register_secret("p.ss(w*rd")

    logs.get_logger("x").info("a p.ss(w*rd b pXssswwwrd")

    assert lines(stream)[0]["event"] == "a *** b pXssswwwrd"


def test_empty_secrets_are_ignored(stream: io.StringIO) -> None:
    logs.configure_logging(stream=stream)
    logs.register_secret("")
    logs.register_secret(None)

    logs.get_logger("x").info("nothing to hide")

    assert lines(stream)[0]["event"] == "nothing to hide"


def test_reset_forgets_registered_secrets(stream: io.StringIO) -> None:
    logs.register_secret("hunter2")
    logs.reset_logging()
    logs.configure_logging(stream=stream)

    logs.get_logger("x").info("hunter2")

    assert lines(stream)[0]["event"] == "hunter2"


def test_capture_logs_returns_processed_events_without_configuration() -> None:
    logs.register_secret("hunter2")
    root_handlers = list(logging.getLogger().handlers)

    with capture_logs() as events:
        logs.get_logger("neotool.runner").debug("record.retried", attempt=2, token="t", note="hunter2")
        logging.getLogger("lib").info("stdlib too")

    assert [e["event"] for e in events] == ["record.retried", "stdlib too"]
    retried = events[0]
    assert retried["level"] == "debug"
    assert retried["logger"] == "neotool.runner"
    assert (retried["attempt"], retried["token"], retried["note"]) == (2, "***", "***")
    assert "timestamp" in retried
    assert not structlog.is_configured()
    assert logging.getLogger().handlers == root_handlers


def test_capture_logs_diverts_configured_output(stream: io.StringIO) -> None:
    logs.configure_logging("info", stream=stream)
    cached = logs.get_logger("neotool.runner")
    cached.info("before")  # first use: this logger is cached now

    with capture_logs() as events:
        cached.info("during", offset=7)
        cached.debug("below the configured level")
    cached.info("after")

    assert [(e["event"], e.get("offset")) for e in events] == [("during", 7)]
    assert [event["event"] for event in lines(stream)] == ["before", "after"]


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TRACE_ID}-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{PARENT_ID}-00",
        f"00-{TRACE_ID}-{PARENT_ID}-01".encode(),
        f"cc-{TRACE_ID}-{PARENT_ID}-01-what-the-future-holds",
        f"cc-{TRACE_ID}-{PARENT_ID}-01",
    ],
)
def test_traceparent_yields_the_trace_id(value: str | bytes) -> None:
    assert logs.trace_id_from_traceparent(value) == TRACE_ID


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        b"",
        f"00-{TRACE_ID.upper()}-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{PARENT_ID.upper()}-01",
        f"00-{'0' * 32}-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
        f"ff-{TRACE_ID}-{PARENT_ID}-01",
        f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01",
        f"00-{TRACE_ID}0-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{PARENT_ID[:-1]}-01",
        f"00-{TRACE_ID}-{PARENT_ID}-1",
        f"00-{TRACE_ID}-{PARENT_ID}",
        f"00-{TRACE_ID}-{PARENT_ID}-01-extra",
        f"0-{TRACE_ID}-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{PARENT_ID}-0g",
        f"00_{TRACE_ID}_{PARENT_ID}_01",
        f" 00-{TRACE_ID}-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{PARENT_ID}-01\n",
        f"cc-{TRACE_ID}-{PARENT_ID}-01.extra",
        b"00-\xff" + TRACE_ID.encode()[1:] + f"-{PARENT_ID}-01".encode(),
    ],
)
def test_malformed_traceparent_yields_none(value: str | bytes | None) -> None:
    assert logs.trace_id_from_traceparent(value) is None
