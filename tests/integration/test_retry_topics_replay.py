"""A replay of a dead letter of a group with retry tiers goes through that group's first tier, and nowhere else."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from neotool_common.cli.dlq import main
from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.policies.retry_topics import retry_topics
from neotool_common.records.message import Message
from neotool_common.testing.harness import read_topic, running, wait_until
from neotool_common.testing.kafka import KafkaEndpoint

from .runner_support import RecordingConsumer, envelope, produce, settings_for

pytestmark = pytest.mark.kafka

DELAYS = (200, 400)


class Flaky(RecordingConsumer):
    """Fails every record whose payload says ``{"bad": true}`` while ``broken``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.broken = True

    def process(self, message: Message) -> None:
        if self.broken and message.payload.get("bad"):
            raise ConnectionError("directory unavailable")
        with self.lock:
            self.processed.append(message)


def test_a_replay_reaches_the_group_through_its_first_retry_tier_and_no_other_group_sees_it(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap = kafka.bootstrap_servers
    topic = make_topic()
    dlq = make_topic(name=dlq_topic_for(topic))
    suffix = uuid.uuid4().hex[:8]
    group_a, group_b = f"tiered-{suffix}", f"plain-{suffix}"
    tiers = [make_topic(name=t) for t in retry_topics(topic, group_a, DELAYS)]
    env = {"RETRY_MAX_ATTEMPTS": "1"}
    tiered = Flaky(settings_for(bootstrap, topic, group_a, RETRY_TOPIC_DELAYS_MS="200,400", **env))
    plain = RecordingConsumer(settings_for(bootstrap, topic, group_b, **env))
    produce(bootstrap, topic, [(k.encode(), envelope(k, {"bad": k == "bad"})) for k in ("a", "bad", "c")])
    with running(tiered), running(plain):
        (dead,) = read_topic(bootstrap, dlq, expect=1)  # through both tiers: A's directory stays down
        wait_until(lambda: len(plain.processed) == 3, what="group B processed every record once")
        tiered.broken = False
        code = main(["replay", dlq, "--brokers", bootstrap])
        output = capsys.readouterr().out
        wait_until(lambda: any(m.record_id == "bad" for m in tiered.processed), what="the replay processed by A")
    (replayed,) = [m for m in tiered.processed if m.record_id == "bad"]

    assert code == 0, output
    assert dead.header("dlq.consumer.group") == group_a
    assert (replayed.topic, replayed.header("retry.due_at"), replayed.header("dlq.replay.count")) == (
        tiers[0],
        "0",
        "1",
    )
    history = json.loads(replayed.header("retry.history") or "[]")
    assert [entry["tier"] for entry in history] == [0, 1, 2], "the attempt history travels with the replay"
    assert [m.record_id for m in plain.processed].count("bad") == 1, "group B never saw the replay"
    assert len(read_topic(bootstrap, topic)) == 3, "nothing was written to the source topic"
