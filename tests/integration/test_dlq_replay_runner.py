"""The whole loop with a real :class:`KafkaConsumerRunner`: it dead-letters, ``neotool-dlq`` replays, it processes.

The DLQ here is written by the runner itself, not seeded by hand: the tool reads what production writes.
"""

from __future__ import annotations

import json
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


class AmountConsumer(KafkaConsumerRunner):
    """Rejects negative amounts as poison until it is "fixed" (the deploy that makes a replay worthwhile)."""

    group_id = "amounts"
    topics: ClassVar[tuple[str, ...]] = ()

    def __init__(self, settings: RunnerSettings, *, fixed: bool) -> None:
        super().__init__(settings, registry=CollectorRegistry())
        self.fixed = fixed
        self.processed: list[Message] = []

    def process(self, message: Message) -> None:
        if message.payload["amount"] < 0 and not self.fixed:
            raise PoisonMessageError("amount must be positive", "$.payload.amount")
        self.processed.append(message)


def dlq_cli(kafka: KafkaEndpoint, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run the CLI in-process; its output, after dropping what the runner logged before it."""
    capsys.readouterr()
    code = main([*argv, "--brokers", kafka.bootstrap_servers])
    return code, capsys.readouterr().out


def test_records_the_runner_dead_lettered_are_processed_after_the_fix_and_replay(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    topic = make_topic()
    dlq = make_topic(name=dlq_topic_for(topic))
    amounts = {"a": 10, "b": -1, "c": 5, "d": -7, "e": 1}
    produce(kafka.bootstrap_servers, topic, [(k.encode(), envelope(k, {"amount": n})) for k, n in amounts.items()])
    settings = settings_for(kafka.bootstrap_servers, topic)

    broken = AmountConsumer(settings, fixed=False)
    with running(broken):
        wait_until(lambda: len(read_topic(kafka.bootstrap_servers, dlq)) == 2, what="two records dead-lettered")
        wait_until(lambda: committed_offsets(kafka.bootstrap_servers, settings.group_id, topic, 1)[0] == 5)
    listed_code, listed = dlq_cli(kafka, capsys, "list", dlq, "--json")
    rows = [json.loads(line) for line in listed.splitlines()]

    assert listed_code == 0
    assert [(r["record_id"], r["reason"], r["original_topic"], r["original_offset"]) for r in rows] == [
        ("b", "poison", topic, 1),
        ("d", "poison", topic, 3),
    ]
    assert {r["exception_type"] for r in rows} == {"neotool_common.errors.PoisonMessageError"}

    replay_code, replayed = dlq_cli(kafka, capsys, "replay", dlq)
    fixed = AmountConsumer(settings, fixed=True)
    with running(fixed):
        wait_until(lambda: len(fixed.processed) == 2, what="the replayed records processed by the fixed consumer")

    assert replay_code == 0
    assert "Replayed 2 record(s)" in replayed
    assert [(m.record_id, m.offset, m.header("dlq.replay.count")) for m in fixed.processed] == [
        ("b", 5, "1"),
        ("d", 6, "1"),
    ]
    assert all(m.header("dlq.reason") is None for m in fixed.processed), "the failure headers were removed"
    assert len(read_topic(kafka.bootstrap_servers, dlq)) == 2, "nothing failed again"


def test_a_record_that_keeps_failing_is_parked_by_the_loop_guard(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    topic = make_topic()
    dlq = make_topic(name=dlq_topic_for(topic))
    parked = make_topic(name=dlq + ".parked")
    produce(kafka.bootstrap_servers, topic, [(b"bad", envelope("bad", {"amount": -3}))])
    broken = AmountConsumer(settings_for(kafka.bootstrap_servers, topic), fixed=False)

    with running(broken):
        read_topic(kafka.bootstrap_servers, dlq, expect=1)
        first_code, _ = dlq_cli(kafka, capsys, "replay", dlq, "--max-replays", "1")
        again = read_topic(kafka.bootstrap_servers, dlq, expect=2)
        second_code, second = dlq_cli(kafka, capsys, "replay", dlq, "--max-replays", "1")

    assert first_code == 0
    assert [r.header("dlq.replay.count") for r in again] == [None, "1"], "the runner kept the replay count"
    assert second_code == 1
    assert f"Parked 1 record(s) in {parked} (loop guard):" in second
    [moved] = read_topic(kafka.bootstrap_servers, parked)
    assert (moved.key, moved.header("dlq.replay.count"), moved.header("dlq.reason")) == (b"bad", "1", "poison")
