"""Retry tiers in a real process: SIGKILL while a record waits in a tier loses nothing."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.policies.retry_topics import retry_topic
from neotool_common.testing.harness import committed_offsets, read_topic, wait_until
from neotool_common.testing.kafka import KafkaEndpoint

from .runner_support import envelope, produce
from .test_runner_process import GRACE_S, consumer_env, consumer_process

pytestmark = pytest.mark.kafka

DELAY_MS = 6000


def test_sigkill_while_a_record_waits_in_a_tier_loses_nothing_and_the_restart_handles_it_once_due(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    group = f"tier-kill-{uuid.uuid4().hex[:8]}"
    tier = make_topic(name=retry_topic(topic, group, DELAY_MS))
    ids = [f"r-{i}" for i in range(10)]
    produce(kafka.bootstrap_servers, topic, [(i.encode(), envelope(i, {"flaky": i == "r-0"})) for i in ids])
    outage = tmp_path / "outage"
    outage.touch()
    env = consumer_env(
        kafka, topic, group, RETRY_MAX_ATTEMPTS="1", RETRY_TOPIC_DELAYS_MS=str(DELAY_MS), FAIL_WHILE_FILE=str(outage)
    )

    with consumer_process(tmp_path, env, "first") as first:
        wait_until(lambda: committed_offsets(kafka.bootstrap_servers, group, topic, 1)[0] == len(ids),
                   what="the source committed past r-0: its tier copy is acknowledged")  # fmt: skip
        (copy,) = read_topic(kafka.bootstrap_servers, tier, expect=1)
        first.process.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
    assert first.handled() == ids[1:]  # the rest of the partition flowed; r-0 waited
    assert committed_offsets(kafka.bootstrap_servers, group, tier, 1)[0] < 1  # nothing committed past it
    assert json.loads(copy.value or b"{}")["record_id"] == "r-0"

    outage.unlink()  # the downstream is back
    with consumer_process(tmp_path, env, "second") as second:
        wait_until(lambda: "r-0" in second.handled(), timeout=DELAY_MS / 1000 + 30, what="r-0 handled from the tier")
        wait_until(lambda: committed_offsets(kafka.bootstrap_servers, group, tier, 1)[0] == 1, what="tier commit")
        second.process.send_signal(signal.SIGTERM)
        assert second.wait(timeout=GRACE_S + 30) == 0, second.stderr()[-3000:]
    assert second.handled() == ["r-0"]
    assert read_topic(kafka.bootstrap_servers, dlq_topic_for(topic)) == []
