"""Slow process() calls: a batch of them must not outlast max.poll.interval.ms nor hold back commits."""

from __future__ import annotations

import time
from collections.abc import Callable

from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.records.message import Message
from neotool_common.testing.harness import committed_offsets, running, wait_until
from neotool_common.testing.kafka import KafkaEndpoint

from .runner_support import RecordingConsumer, envelope, produce, settings_for

WORK_S = 0.2
MAX_POLL_INTERVAL_MS = 2000


class SlowConsumer(RecordingConsumer):
    def process(self, message: Message) -> None:
        time.sleep(WORK_S)  # the work: together, the records of one fetch take longer than max.poll.interval.ms
        super().process(message)


def test_slow_records_keep_the_member_in_its_group_and_commits_at_their_pace(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    make_topic(name=dlq_topic_for(topic))
    ids = [f"s-{i:02}" for i in range(24)]  # 4.8 s of work, all in the first fetch
    produce(kafka.bootstrap_servers, topic, [(i.encode(), envelope(i, {"fail": 2 if i == "s-09" else 0})) for i in ids])
    settings = settings_for(
        kafka.bootstrap_servers,
        topic,
        KAFKA_CONFIG_MAX_POLL_INTERVAL_MS=str(MAX_POLL_INTERVAL_MS),
        KAFKA_CONFIG_SESSION_TIMEOUT_MS=str(MAX_POLL_INTERVAL_MS),
        KAFKA_CONFIG_HEARTBEAT_INTERVAL_MS="300",
    )
    runner = SlowConsumer(settings)
    group = runner.settings.group_id

    def committed() -> int:
        return committed_offsets(kafka.bootstrap_servers, group, topic, 1)[0]

    with running(runner):
        wait_until(lambda: 0 < committed() < len(ids) - 5, timeout=20, what="a commit while records are processed")
        wait_until(lambda: len(runner.processed) == len(ids), timeout=30, what="every record processed")
        wait_until(lambda: committed() == len(ids), what="the commit at the end")
        value = runner.registry.get_sample_value
        assert value("neotool_consumer_commit_failures_total", {"group": group}) == 0
        for kind in ("revoke", "lost"):  # before the runner stops: leaving the group revokes
            assert not value("neotool_consumer_rebalances_total", {"group": group, "kind": kind}), "never evicted"

    assert [m.record_id for m in runner.processed] == ids, "once each and in order, the retried one included"
    assert runner.attempts["s-09"] == 3
