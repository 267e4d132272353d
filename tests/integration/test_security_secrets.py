"""A secret never leaves the process: everything a run over SCRAM/TLS emits is scanned for the password."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.observability.logs import configure_logging, reset_logging
from neotool_common.testing.harness import running, wait_until
from neotool_common.testing.kafka import free_port
from neotool_common.testing.kafka.access import write_topic
from neotool_common.testing.kafka.secured import SecuredKafkaCluster
from neotool_common.testing.secured import read_topic_as

from .liveness_support import ExitCode
from .runner_support import RecordingConsumer, envelope, produce, settings_for
from .security_support import Principal, runner_acls

pytestmark = pytest.mark.kafka


def get(port: int, path: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode())
    except urllib.error.URLError:
        return ""


def test_the_password_is_nowhere_in_what_a_run_emits(
    secured_kafka: SecuredKafkaCluster, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    topic = secured_kafka.create_topic(f"t.secret.{uuid.uuid4().hex[:8]}")
    secured_kafka.create_topic(dlq_topic_for(topic))
    group = f"g-{uuid.uuid4().hex[:8]}"
    user = Principal(secured_kafka, runner_acls(topic, group))
    producer = Principal(secured_kafka, [write_topic(topic)])
    records = [(b"a", envelope("a")), (b"p", envelope("p", {"poison": True})), (b"f", envelope("f", {"fail": 1}))]
    produce(secured_kafka.bootstrap_servers, topic, records, config=producer.config())
    password_file = tmp_path / "password"
    password_file.write_text(user.password + "\n")
    env = {k: v for k, v in user.env().items() if k != "KAFKA_SASL_PASSWORD"}
    port = free_port()
    wrong_password = f"old-{uuid.uuid4().hex}"
    env |= {"KAFKA_SASL_PASSWORD_FILE": str(password_file), "METRICS_PORT": str(port), "LOG_LEVEL": "DEBUG"}
    settings = settings_for(env["KAFKA_BROKERS"], topic, group, **env)
    emitted: list[str] = [repr(settings), str(settings), repr(settings.connection)]
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    try:
        runner = RecordingConsumer(settings)
        with running(runner):
            wait_until(lambda: len(runner.processed) == 2, what="the good records")
            wait_until(lambda: "ready" in get(port, "/readyz"), what="/readyz")
            emitted += [get(port, "/metrics"), get(port, "/readyz"), get(port, "/healthz")]
        emitted += [repr(r) for r in read_topic_as(secured_kafka.client_config(), dlq_topic_for(topic), expect=1)]
        wrong_env = {**user.env(), "KAFKA_SASL_PASSWORD": wrong_password, "AUTH_FAILURE_EXIT_MS": "1000"}
        failing = RecordingConsumer(settings_for(env["KAFKA_BROKERS"], topic, group, **wrong_env))
        emitted.append(repr(failing.settings))
        assert ExitCode(failing).wait(40, "a wrong password") == 1
    finally:
        reset_logging()
    out, err = capfd.readouterr()
    emitted += [stream.getvalue(), out, err]
    assert "Kafka authentication failed" in stream.getvalue()
    for text in emitted:
        assert user.password not in text
        assert wrong_password not in text
