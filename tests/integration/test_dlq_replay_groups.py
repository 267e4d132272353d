"""Two consumer groups on one topic: a replay of one group's dead letters reaches that group and no other.

Group A rejects one record as poison, group B accepts everything. Replayed, the record goes back to the topic
both read; B's runner commits past it without processing it, until a replay says ``--all-groups``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import ClassVar

import pytest
from prometheus_client import CollectorRegistry

from neotool_common.cli.dlq import main
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.errors import PoisonMessageError
from neotool_common.records.message import Message
from neotool_common.testing.harness import committed_offsets, read_topic, running, wait_until
from neotool_common.testing.kafka import KafkaEndpoint

from .runner_support import envelope, produce, settings_for

pytestmark = pytest.mark.kafka

SKIPPED = "neotool_consumer_records_skipped_total"


class Reader(KafkaConsumerRunner):
    """Records what it processed; with ``strict``, a negative amount is poison."""

    group_id = "unused"
    topics: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: RunnerSettings, *, strict: bool) -> None:
        super().__init__(settings, registry=CollectorRegistry())
        self.strict = strict
        self.processed: list[Message] = []

    def process(self, message: Message) -> None:
        if self.strict and message.payload["amount"] < 0:
            raise PoisonMessageError("amount must be positive", "$.payload.amount")
        self.processed.append(message)

    def seen(self, record_id: str) -> list[Message]:
        return [m for m in self.processed if m.record_id == record_id]

    def skipped(self, topic: str) -> float | None:
        labels = {"topic": topic, "group": self.settings.group_id, "reason": "replay_for_other_group"}
        return self.registry.get_sample_value(SKIPPED, labels)


def test_a_replay_reaches_only_the_group_that_dead_lettered_the_record_unless_all_groups_is_asked(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap = kafka.bootstrap_servers
    topic = make_topic()
    dlq = make_topic(name=dlq_topic_for(topic))
    produce(bootstrap, topic, [(k.encode(), envelope(k, {"amount": n})) for k, n in (("a", 1), ("bad", -1), ("c", 2))])
    suffix = uuid.uuid4().hex[:8]
    group_a, group_b = f"strict-{suffix}", f"lenient-{suffix}"
    strict = Reader(settings_for(bootstrap, topic, group_a), strict=True)
    lenient = Reader(settings_for(bootstrap, topic, group_b), strict=False)

    def both_committed(end: int) -> None:
        for group in (group_a, group_b):
            wait_until(lambda g=group: committed_offsets(bootstrap, g, topic, 1)[0] == end, what=f"{group} at {end}")

    def replay(*argv: str) -> tuple[int, str]:
        code = main(["replay", dlq, *argv, "--brokers", bootstrap])
        return code, capsys.readouterr().out

    with running(strict), running(lenient):
        both_committed(3)
        scoped, scoped_out = replay()  # A is still broken: the copy comes back to the DLQ, which must keep its scope
        again = read_topic(bootstrap, dlq, expect=2)[1]
        both_committed(4)
        assert len(lenient.seen("bad")) == 1, "group B processed the record once, before the replay of A's dead letter"
        assert lenient.skipped(topic) == 1
        planned, plan = replay("--all-groups", "--offset-from", "1", "--dry-run")
        everyone, everyone_out = replay("--all-groups", "--offset-from", "1")
        both_committed(5)
        third = read_topic(bootstrap, dlq, expect=3)[2]

    assert scoped == 0
    assert f"The copies are processed by group {group_a} (1)." in scoped_out
    assert (again.header("dlq.consumer.group"), again.header("dlq.replay.group")) == (group_a, group_a)
    assert again.header("dlq.replay.count") == "1"
    assert planned == 0
    assert f"-> {topic}[0]  for every group reading {topic}  (replay 2 of 3)" in plan
    assert f"Run it: neotool-dlq replay {dlq} --offset-from 1 --all-groups --brokers {bootstrap}" in plan
    assert everyone == 0
    assert "Every consumer group reading the target processes the copies again (--all-groups)." in everyone_out
    assert [m.header("dlq.replay.count") for m in lenient.seen("bad")] == [None, "2"], "--all-groups reached B"
    assert lenient.seen("bad")[1].header("dlq.replay.group") is None
    assert (third.header("dlq.replay.count"), third.header("dlq.replay.group")) == ("2", None)
    assert strict.skipped(topic) == 0
