"""Least privilege on a secured broker: the runner with exactly the ACLs of docs/operating.md, and with one missing."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.testing.harness import running, wait_until
from neotool_common.testing.kafka.access import Acl, describe_topic, read_group, read_topic, write_topic
from neotool_common.testing.kafka.secured import SecuredKafkaCluster
from neotool_common.testing.logs import capture_logs
from neotool_common.testing.secured import committed_offsets_as, read_topic_as

from .liveness_support import ExitCode
from .runner_support import RecordingConsumer, envelope, produce, settings_for
from .security_support import Principal, runner_acls

pytestmark = pytest.mark.kafka

GOOD = ["a", "b", "c"]
POISON_OFFSET = 1


def source(cluster: SecuredKafkaCluster) -> str:
    topic = cluster.create_topic(f"t.acl.{uuid.uuid4().hex[:8]}")
    cluster.create_topic(dlq_topic_for(topic))
    records = [(b"a", envelope("a")), (b"p", envelope("p", {"poison": True}))]
    records += [(i.encode(), envelope(i)) for i in GOOD[1:]]
    produce(cluster.bootstrap_servers, topic, records, config=cluster.client_config())
    return topic


def runner_for(user: Principal, topic: str, group: str, **env: str) -> RecordingConsumer:
    return RecordingConsumer(settings_for(user.cluster.bootstrap_servers, topic, group, **user.env(), **env))


def sample(runner: RecordingConsumer, name: str, **labels: str) -> float:
    return runner.registry.get_sample_value(name, {"group": runner.settings.group_id, **labels}) or 0.0


def test_exactly_the_documented_acls_are_enough(secured_kafka: SecuredKafkaCluster) -> None:
    topic, group = source(secured_kafka), f"g-{uuid.uuid4().hex[:8]}"
    user = Principal(secured_kafka, runner_acls(topic, group))
    runner = runner_for(user, topic, group)
    admin = secured_kafka.client_config()
    with capture_logs() as events, running(runner):
        wait_until(lambda: [m.record_id for m in runner.processed] == GOOD, what="the good records")
        wait_until(lambda: committed_offsets_as(admin, group, topic, 1)[0] == 4, what="the commit past every record")
        lag_labels = {"topic": topic, "partition": "0"}
        wait_until(
            lambda: (
                runner.registry.get_sample_value("neotool_consumer_lag_records", {"group": group, **lag_labels}) == 0
            ),
            timeout=20,
            what="the lag monitor's answer (list_offsets, the offset reader's committed())",
        )
    (dead,) = read_topic_as(admin, dlq_topic_for(topic), expect=1)
    assert dead.key == b"p"
    warnings = [
        e["event"] for e in events if e["level"] in ("warning", "error") and e["event"] != "dead-lettering record"
    ]
    assert warnings == [], "no check, refresh or write was refused"


@pytest.mark.parametrize(
    ("missing", "needed"),
    [
        pytest.param(lambda topic, group: read_group(group), "GROUP_AUTHORIZATION_FAILED", id="group-read"),
        pytest.param(lambda topic, group: read_topic(topic), "TOPIC_AUTHORIZATION_FAILED", id="topic-read"),
    ],
)
def test_a_missing_read_acl_is_fatal_one_error_line_and_exit_1(
    secured_kafka: SecuredKafkaCluster, missing: Callable[[str, str], Acl], needed: str
) -> None:
    topic, group = source(secured_kafka), f"g-{uuid.uuid4().hex[:8]}"
    acls = [acl for acl in runner_acls(topic, group) if acl != missing(topic, group)]
    runner = runner_for(Principal(secured_kafka, acls), topic, group)
    with capture_logs() as events:
        assert ExitCode(runner).wait(40, f"{missing(topic, group)} was refused", events) == 1
    errors = [e for e in events if e["level"] == "error"]
    assert len(errors) == 1, errors
    assert needed in errors[0]["error"]
    assert runner.processed == []


def test_dlq_write_denied_while_running_holds_commits_alarms_and_recovers_once_granted(
    secured_kafka: SecuredKafkaCluster,
) -> None:
    topic, group = source(secured_kafka), f"g-{uuid.uuid4().hex[:8]}"
    dlq = dlq_topic_for(topic)
    # WRITE on some other topic lets the idempotent producer start (Kafka 3.2+); DESCRIBE keeps the DLQ visible.
    user = Principal(
        secured_kafka, [read_topic(topic), read_group(group), describe_topic(dlq), write_topic(f"{topic}.x")]
    )
    runner = runner_for(user, topic, group, DLQ_WRITE_TIMEOUT_MS="500")
    admin = secured_kafka.client_config()

    def committed() -> int:
        return committed_offsets_as(admin, group, topic, 1)[0]

    with capture_logs() as events, running(runner):
        wait_until(lambda: [m.record_id for m in runner.processed] == GOOD, what="the good records")
        wait_until(
            lambda: sample(runner, "neotool_consumer_dlq_write_failures_total", topic=topic) >= 2, what="refusals"
        )
        wait_until(lambda: committed() == POISON_OFFSET, what="the commit up to the refused record")
        assert committed() == POISON_OFFSET, "nothing committed past the record whose DLQ write was refused"
        assert sample(runner, "neotool_consumer_dlq_pending") == 1
        refused = [e for e in events if e["event"].startswith("dead-letter write failed")]
        assert refused, "the refusal is in the logs"
        assert "authorization" in refused[0]["error"].lower()
        assert refused[0]["needs"] == f"WRITE on topic {dlq}"

        user.grant([write_topic(dlq)])
        (dead,) = read_topic_as(admin, dlq, expect=1)
        wait_until(lambda: committed() == len(GOOD) + 1, what="the commit past every record, without a restart")
    assert dead.key == b"p"
    assert [m.record_id for m in runner.processed] == GOOD, "every good record once"
    assert runner.attempts["p"] == 1
    assert len(read_topic_as(admin, dlq)) == 1, "the dead letter written once"


def test_a_principal_whose_dlq_producer_cannot_start_is_fatal_exit_1(secured_kafka: SecuredKafkaCluster) -> None:
    topic, group = source(secured_kafka), f"g-{uuid.uuid4().hex[:8]}"
    user = Principal(secured_kafka, [read_topic(topic), read_group(group)])  # WRITE on no topic at all
    runner = runner_for(user, topic, group)
    with capture_logs() as events:
        assert ExitCode(runner).wait(15, "the dead-letter producer was refused its producer id", events) == 1
    errors = [e for e in events if e["level"] == "error"]
    assert len(errors) == 1, errors
    assert "CLUSTER_AUTHORIZATION_FAILED" in errors[0]["error"]
