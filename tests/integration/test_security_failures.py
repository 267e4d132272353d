"""Refused authentication ends the runner (exit 1) after AUTH_FAILURE_EXIT_MS; an unreachable broker does not."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from neotool_common.testing.harness import wait_until
from neotool_common.testing.kafka import free_port
from neotool_common.testing.kafka.certs import CertificateAuthority
from neotool_common.testing.kafka.secured import SecuredKafkaCluster
from neotool_common.testing.logs import capture_logs

from .liveness_support import ExitCode
from .runner_support import RecordingConsumer, settings_for

pytestmark = pytest.mark.kafka

EXIT_AFTER_MS = 3000


def readyz(port: int) -> dict[str, object]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        return dict(json.loads(exc.read()))
    except urllib.error.URLError:
        return {}


def refused(env: dict[str, str], cause: str, secret: str | None = None) -> None:
    """The runner logs one ERROR naming ``cause``, answers not ready with it, then exits 1."""
    port = free_port()
    env = {**env, "AUTH_FAILURE_EXIT_MS": str(EXIT_AFTER_MS), "METRICS_PORT": str(port)}
    topic = f"t.refused.{uuid.uuid4().hex[:8]}"
    runner = RecordingConsumer(settings_for(env["KAFKA_BROKERS"], topic, **env))
    started = time.monotonic()
    with capture_logs() as events:
        exit_code = ExitCode(runner)
        wait_until(lambda: cause in str(readyz(port).get("reason", "")), timeout=20, what="/readyz naming the cause")
        assert readyz(port)["status"] == "not_ready"
        assert exit_code.wait(40, "authentication was refused", events) == 1
    took = time.monotonic() - started
    assert took >= EXIT_AFTER_MS / 1000, f"exited after {took:.1f}s, before AUTH_FAILURE_EXIT_MS"
    errors = [e for e in events if e["level"] == "error"]
    refusals = [e for e in errors if e["event"] == "Kafka authentication failed"]
    assert len(refusals) == 1, f"one ERROR line (repeats rate-limited), got {len(refusals)}"
    assert cause in refusals[0]["cause"]
    assert [e["event"] for e in errors if e not in refusals] == ["consumer failed; exiting"]
    if secret is not None:
        assert secret not in repr(list(events)), "the secret is in a log event"


def test_a_wrong_password_logs_the_cause_once_is_not_ready_and_exits_1(secured_kafka: SecuredKafkaCluster) -> None:
    password = f"wrong-{uuid.uuid4().hex}"
    env = secured_kafka.scram_env("admin", password)
    refused(env, "SASL authentication failed", secret=password)


def test_a_broker_certificate_from_another_ca_is_refused_and_exits_1(
    secured_kafka: SecuredKafkaCluster, tmp_path: Path
) -> None:
    other = CertificateAuthority(tmp_path / "other", "another-ca")
    env = {
        **secured_kafka.scram_env("admin", secured_kafka.admin_password),
        "KAFKA_SSL_CA_LOCATION": str(other.certificate),
    }
    refused(env, "broker certificate not trusted")


def test_an_unreachable_broker_keeps_the_runner_up_and_not_ready() -> None:
    port = free_port()
    env = {"AUTH_FAILURE_EXIT_MS": "1000", "METRICS_PORT": str(port)}
    runner = RecordingConsumer(settings_for(f"127.0.0.1:{free_port()}", "t.unreachable", **env))
    exit_code = ExitCode(runner)
    wait_until(lambda: readyz(port).get("status") == "not_ready", timeout=20, what="/readyz answering not ready")
    time.sleep(4)
    assert exit_code.code is None, "still running well past AUTH_FAILURE_EXIT_MS"
    assert readyz(port)["status"] == "not_ready"
    runner.stop()
    assert exit_code.wait(30, "stop()") == 0
