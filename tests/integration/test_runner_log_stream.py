"""The log stream of a real runner process: JSON lines only, librdkafka's included, and repeats rate-limited.

An unreachable broker (``KAFKA_BROKERS=127.0.0.1:1``) used to print hundreds of lines in 10 s, half of them
librdkafka's raw ``%3|…|FAIL|…``. The same process, stopped by SIGTERM, logs the request and how long draining took.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from .test_runner_process import ROOT, base_env

RUN_S = 10.0
# Today's stream is a dozen lines; hundreds without the rate limit.
MAX_LINES = 20
SECRET = "hunter2-never-logged"


def test_an_unreachable_broker_gives_a_short_json_only_stream_and_sigterm_is_logged(tmp_path: Path) -> None:
    env = base_env(
        KAFKA_BROKERS="127.0.0.1:1",
        KAFKA_TOPICS="nowhere.v1",
        KAFKA_GROUP_ID="log-stream",
        METRICS_PORT="0",
        MAX_CONCURRENCY="8",
        ORDERING="key",
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_MECHANISM="PLAIN",
        KAFKA_SASL_USERNAME="svc",
        KAFKA_SASL_PASSWORD=SECRET,
        HANDLED_FILE=str(tmp_path / "handled"),
        SHUTDOWN_GRACE_MS="2000",
    )
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        command = [sys.executable, "-m", "tests.integration.process_consumer"]
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
        time.sleep(RUN_S)
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    lines = [line for line in (out.read_text() + err.read_text()).splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line parses: no raw %3|…|FAIL|… among them
    assert code == 0, lines
    assert len(lines) < MAX_LINES, "\n".join(lines)
    assert all(event.get("level") for event in events)
    assert SECRET not in "\n".join(lines)
    names = [event["event"] for event in events]
    (start,) = [event for event in events if event["event"] == "consumer starting"]
    assert (start["max_concurrency"], start["ordering"], start["brokers"]) == (8, "key", "127.0.0.1:1")
    assert any(event.get("logger") == "librdkafka" for event in events), "librdkafka's lines come through, as JSON"
    assert any(name.startswith("cannot reach KAFKA_BROKERS=127.0.0.1:1") for name in names)
    (stop,) = [event for event in events if event["event"] == "stop requested; draining"]
    assert stop["reason"] == "SIGTERM"
    (stopped,) = [event for event in events if event["event"] == "consumer stopped"]
    assert names.index("stop requested; draining") < names.index("consumer stopped")
    assert stopped["drained_in_s"] >= 0
