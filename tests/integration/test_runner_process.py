"""The runner as a real process: SIGTERM, SIGKILL and restart, configuration errors, the circuit breaker.

The consumer is :mod:`tests.integration.process_consumer`; it appends (and fsyncs) each handled record_id to a
file, so the test knows exactly what the process had finished when it was stopped or killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.testing.harness import committed_offsets, read_topic, wait_until
from neotool_common.testing.kafka import KafkaEndpoint

from .runner_support import GROUP_PROTOCOLS, envelope, group_timing, produce

ROOT = Path(__file__).resolve().parents[2]
GRACE_S = 5.0
EXIT_CONFIGURATION = 2
EXIT_CIRCUIT_OPEN = 3


@dataclass
class ConsumerProcess:
    process: subprocess.Popen[bytes]
    handled_file: Path
    stderr_file: Path

    def handled(self) -> list[str]:
        return self.handled_file.read_text().splitlines() if self.handled_file.exists() else []

    def stderr(self) -> str:
        return self.stderr_file.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines (librdkafka's own warnings are plain text and skipped)."""
        return [json.loads(line) for line in self.stderr().splitlines() if line.startswith("{")]

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"consumer still running after {timeout}s:\n{self.stderr()[-3000:]}") from None


def base_env(**env: str) -> dict[str, str]:
    """A clean environment, but for what makes the child import the same code as this process."""
    inherited = {name: os.environ[name] for name in ("PATH", "PYTHONPATH") if name in os.environ}
    return {"PATH": "/usr/bin:/bin", **inherited, "PYTHONDONTWRITEBYTECODE": "1", **env}


def consumer_env(kafka: KafkaEndpoint, topic: str, group: str, **env: str) -> dict[str, str]:
    """The consumer's environment; ``env`` adds to it (``**GROUP_PROTOCOLS[name]`` picks a group protocol)."""
    settings = {
        "KAFKA_BROKERS": kafka.bootstrap_servers,
        "KAFKA_TOPICS": topic,
        "KAFKA_GROUP_ID": group,
        "METRICS_PORT": "0",
        "COMMIT_INTERVAL_MS": "100",
        "SHUTDOWN_GRACE_MS": str(int(GRACE_S * 1000)),
        "DLQ_WRITE_TIMEOUT_MS": "5000",
        **group_timing(env, session_ms=3000, heartbeat_ms=300),
    }
    return base_env(**{**settings, **env})


@contextmanager
def consumer_process(tmp_path: Path, env: Mapping[str, str], name: str = "run") -> Iterator[ConsumerProcess]:
    """Start the consumer; on the way out it must have ended, or it is killed and the test fails."""
    handled_file, stderr_file = tmp_path / f"{name}.handled", tmp_path / f"{name}.stderr"
    with stderr_file.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.process_consumer"],
            cwd=ROOT,
            env={**env, "HANDLED_FILE": str(handled_file)},
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
        )
    consumer = ConsumerProcess(process, handled_file, stderr_file)
    try:
        yield consumer
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
            raise AssertionError(f"{name}: the consumer process was left running:\n{consumer.stderr()[-3000:]}")


def committed(kafka: KafkaEndpoint, group: str, topic: str) -> int:
    return committed_offsets(kafka.bootstrap_servers, group, topic, 1)[0]


def records(ids: list[str], poison: Collection[str] = ()) -> list[tuple[bytes | None, bytes | None]]:
    return [(i.encode(), envelope(i, {"n": i, "poison": i in poison})) for i in ids]


def test_sigterm_mid_stream_exits_0_within_the_grace_period_having_committed_exactly_what_it_handled(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    ids = [f"r-{i:03}" for i in range(300)]
    produce(kafka.bootstrap_servers, topic, records(ids))
    group = f"sigterm-{uuid.uuid4().hex[:8]}"

    with consumer_process(tmp_path, consumer_env(kafka, topic, group, WORK_MS="10")) as consumer:
        wait_until(lambda: len(consumer.handled()) >= 30, what="30 records handled")
        consumer.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = consumer.wait(timeout=GRACE_S + 30)
        stopped_after = time.monotonic() - signalled

    assert code == 0, consumer.stderr()[-3000:]
    assert stopped_after < GRACE_S, f"stopped {stopped_after:.1f}s after SIGTERM"
    handled = consumer.handled()
    assert handled == ids[: len(handled)], "handled once each, in order"
    assert len(handled) < len(ids), "stopped mid-stream"
    assert committed(kafka, group, topic) == len(handled), "the commit covers exactly the handled records"
    (stopped,) = [e for e in consumer.events() if e["event"] == "consumer stopped"]
    assert stopped["records_processed"] == len(handled)
    assert "Traceback" not in consumer.stderr()


def test_sigkill_then_restart_loses_nothing_and_repeats_only_records_after_the_last_commit(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    ids = [f"r-{i:03}" for i in range(200)]
    poison = set(ids[7::25])
    produce(kafka.bootstrap_servers, topic, records(ids, poison))
    group = f"sigkill-{uuid.uuid4().hex[:8]}"
    offset_of = {record_id: offset for offset, record_id in enumerate(ids)}

    with consumer_process(tmp_path, consumer_env(kafka, topic, group, WORK_MS="10"), "first") as first:
        wait_until(lambda: len(first.handled()) >= 60, what="60 records handled")
        wait_until(lambda: committed(kafka, group, topic) > 0, what="a first commit")
        first.process.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
    at_kill = committed(kafka, group, topic)
    handled_first = first.handled()
    assert 0 < at_kill <= offset_of[handled_first[-1]] + 1
    assert at_kill < len(ids), "killed mid-stream"

    with consumer_process(tmp_path, consumer_env(kafka, topic, group), "second") as second:
        wait_until(lambda: committed(kafka, group, topic) == len(ids), timeout=60, what="the commit at the end")
        second.process.send_signal(signal.SIGTERM)
        assert second.wait(timeout=GRACE_S + 30) == 0, second.stderr()[-3000:]
    handled_second = second.handled()

    good = [i for i in ids if i not in poison]
    for run in (handled_first, handled_second):
        assert run == sorted(run, key=offset_of.__getitem__), "in order"
        assert len(set(run)) == len(run), "once per run"
        assert not set(run) & poison, "poison never handled"
    assert set(handled_first) | set(handled_second) == set(good), "no good record lost"
    repeated = set(handled_first) & set(handled_second)
    assert all(offset_of[i] >= at_kill for i in repeated), "only records after the last commit are repeated"
    first_good_after_commit = next(i for i in good if offset_of[i] >= at_kill)
    assert handled_second[0] == first_good_after_commit, "the restart resumes at the committed offset"

    dead = Counter(
        int(r.header("dlq.original.offset") or -1) for r in read_topic(kafka.bootstrap_servers, dlq_topic_for(topic))
    )
    assert set(dead) == {offset_of[i] for i in poison}, "every poison record dead-lettered"
    assert all(count == 1 for offset, count in dead.items() if offset < at_kill), "no second copy before the commit"


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        pytest.param({}, "KAFKA_BROKERS", id="missing KAFKA_BROKERS"),
        pytest.param({"KAFKA_BROKERS": "127.0.0.1:9", "RETRY_MAX_ATTEMPTS": "abc"}, "RETRY_MAX_ATTEMPTS", id="abc"),
        pytest.param({"KAFKA_BROKERS": "127.0.0.1:9", "LOG_FORMAT": "xml"}, "LOG_FORMAT", id="xml"),
        pytest.param(
            {"KAFKA_BROKERS": "127.0.0.1:9", "KAFKA_CONFIG_NO_SUCH_THING": "1"},
            "KAFKA_CONFIG_NO_SUCH_THING",
            id="a librdkafka setting that does not exist",
        ),
        pytest.param(
            {
                "KAFKA_BROKERS": "127.0.0.1:9",
                "KAFKA_CONFIG_GROUP_PROTOCOL": "consumer",
                "KAFKA_CONFIG_SESSION_TIMEOUT_MS": "6000",
            },
            "KAFKA_CONFIG_SESSION_TIMEOUT_MS",
            id="session timeout under the consumer protocol",
        ),
    ],
)
def test_bad_configuration_exits_2_with_one_line_naming_the_setting(env: dict[str, str], setting: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.process_consumer"],
        cwd=ROOT,
        env=base_env(KAFKA_TOPICS="bank.v1", KAFKA_GROUP_ID="g", HANDLED_FILE=os.devnull, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_CONFIGURATION
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"FileRecordingConsumer: configuration error: {setting}: ")


def test_all_poison_trips_the_circuit_breaker_after_5_dead_letters_and_commits_only_those(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    ids = [f"p-{i:02}" for i in range(40)]
    produce(kafka.bootstrap_servers, topic, records(ids, set(ids)))
    group = f"circuit-{uuid.uuid4().hex[:8]}"

    env = consumer_env(kafka, topic, group, CIRCUIT_MAX_CONSECUTIVE_DLQ="5")
    with consumer_process(tmp_path, env) as consumer:
        code = consumer.wait(timeout=60)

    assert code == EXIT_CIRCUIT_OPEN, consumer.stderr()[-3000:]
    dead = read_topic(kafka.bootstrap_servers, dlq_topic_for(topic))
    assert [int(r.header("dlq.original.offset") or -1) for r in dead] == list(range(5)), "at most 5, in order"
    assert committed(kafka, group, topic) == 5, "committed exactly up to the acknowledged dead-letters"
    assert consumer.handled() == []
    assert any(e["event"].startswith("circuit breaker open") for e in consumer.events())


@pytest.mark.kafka
@pytest.mark.parametrize("protocol", ["classic-cooperative", "consumer"])
def test_each_client_gets_only_its_own_settings_so_librdkafka_warns_about_none(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], tmp_path: Path, protocol: str
) -> None:
    """Consumer settings (static membership, the assignor) once leaked into the dead-letter producer, and
    KAFKA_CONFIG_GROUP_PROTOCOL=consumer made the runner exit 2: both clients run here, the DLQ producer too."""
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    ids = [f"c-{i:02}" for i in range(20)]
    poison = {"c-05", "c-14"}
    produce(kafka.bootstrap_servers, topic, records(ids, poison))
    group = f"confwarn-{protocol}-{uuid.uuid4().hex[:8]}"
    user_settings = {
        **GROUP_PROTOCOLS[protocol],
        "KAFKA_CONFIG_GROUP_INSTANCE_ID": f"{group}-0",  # consumer only
        "KAFKA_CONFIG_MAX_POLL_INTERVAL_MS": "60000",  # consumer only
        "KAFKA_CONFIG_LINGER_MS": "5",  # producer only
        "KAFKA_CONFIG_CLIENT_RACK": "rack-a",  # both
    }
    with consumer_process(tmp_path, consumer_env(kafka, topic, group, **user_settings)) as consumer:
        ended = consumer.process.poll
        wait_until(lambda: ended() is not None or committed(kafka, group, topic) == len(ids), timeout=60, what="all")
        assert ended() is None, f"exit {ended()}: {consumer.stderr()[-3000:]}"  # exit 2 under consumer, before
        consumer.process.send_signal(signal.SIGTERM)
        code = consumer.wait(timeout=GRACE_S + 30)

    stderr = consumer.stderr()
    assert code == 0, stderr[-3000:]
    assert "CONFWARN" not in stderr, [line for line in stderr.splitlines() if "CONFWARN" in line]
    assert consumer.handled() == [i for i in ids if i not in poison]
    assert len(read_topic(kafka.bootstrap_servers, dlq_topic_for(topic), expect=2)) == 2, "the DLQ producer ran"
