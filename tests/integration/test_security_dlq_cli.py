"""``neotool-dlq`` on a secured broker, over SCRAM/TLS and mutual TLS, with the ACLs of docs/operating.md."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer

from neotool_common.cli.dlq import main
from neotool_common.deadletter.headers import PARKED_SUFFIX, dlq_topic_for
from neotool_common.testing.kafka.access import (
    Access,
    Acl,
    create_topic_acl,
    describe_topic,
    read_group,
    read_topic,
    write_topic,
)
from neotool_common.testing.kafka.secured import SecuredKafkaCluster
from neotool_common.testing.secured import read_topic_as
from tests.dlq_support import Failure, envelope

from .security_support import Principal

pytestmark = pytest.mark.kafka


def seeded(cluster: SecuredKafkaCluster) -> tuple[str, str]:
    """A source topic and its DLQ holding two dead letters; the second was replayed 3 times (it will be parked)."""
    topic = cluster.create_topic(f"t.dlqcli.{uuid.uuid4().hex[:8]}")
    dlq = cluster.create_topic(dlq_topic_for(topic))
    fresh = Failure(original_topic=topic).headers()
    tired = Failure(original_topic=topic, original_offset=1, replay_count=3).headers()
    config = cluster.client_config()
    producer = Producer(config)
    for headers, record_id in ((fresh, "r1"), (tired, "r2")):
        producer.produce(dlq, value=envelope(record_id), key=record_id.encode(), headers=headers)
    assert producer.flush(30) == 0
    return topic, dlq


def replay_acls(topic: str, dlq: str, group: str) -> list[Acl]:
    parked = dlq + PARKED_SUFFIX
    return [read_topic(dlq), read_group(group), write_topic(topic), create_topic_acl(parked), write_topic(parked)]


def run(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_stats_and_replay_over_scram_with_exactly_their_acls(
    secured_kafka: SecuredKafkaCluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    topic, dlq = seeded(secured_kafka)
    reader = Principal(secured_kafka, [read_topic(dlq)])
    code, out, err = run(reader.env(), monkeypatch, capsys, "list", dlq, "--json")
    assert (code, err) == (0, ""), err
    assert out.count("orders.errors.BadAmount") == 2
    code, out, err = run(reader.env(), monkeypatch, capsys, "stats", dlq)
    assert (code, err) == (0, ""), err

    group = f"replay-{uuid.uuid4().hex[:8]}"
    replayer = Principal(secured_kafka, replay_acls(topic, dlq, group))
    code, out, err = run(replayer.env(), monkeypatch, capsys, "replay", dlq, "--group", group)
    assert code == 1, out + err  # 1: a record was parked, not replayed (the loop guard), as designed
    admin = secured_kafka.client_config()
    assert [r.key for r in read_topic_as(admin, topic, expect=1)] == [b"r1"]
    assert [r.key for r in read_topic_as(admin, dlq + PARKED_SUFFIX, expect=1)] == [b"r2"]


def test_list_over_mutual_tls(
    secured_kafka: SecuredKafkaCluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _, dlq = seeded(secured_kafka)
    name = f"ops-{uuid.uuid4().hex[:6]}"
    Access(secured_kafka.admin).grant(f"User:{name}", [read_topic(dlq)])
    env = secured_kafka.mtls_env(secured_kafka.issue_client_certificate(name))
    code, out, err = run(env, monkeypatch, capsys, "list", dlq, "--json")
    assert (code, err) == (0, ""), err
    assert out.count("orders.errors.BadAmount") == 2


@pytest.mark.parametrize("missing", ["write-target", "create-parked"])
def test_replay_with_a_missing_permission_exits_2_naming_it_and_sends_nothing(
    secured_kafka: SecuredKafkaCluster,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    missing: str,
) -> None:
    topic, dlq = seeded(secured_kafka)
    group = f"replay-{uuid.uuid4().hex[:8]}"
    dropped = {
        "write-target": write_topic(topic),
        "create-parked": create_topic_acl(dlq + PARKED_SUFFIX),
    }[missing]
    # DESCRIBE on the target keeps it visible: the replay can tell "not allowed" from "does not exist".
    acls = [acl for acl in replay_acls(topic, dlq, group) if acl != dropped] + [describe_topic(topic)]
    replayer = Principal(secured_kafka, acls)
    code, out, err = run(replayer.env(), monkeypatch, capsys, "replay", dlq, "--group", group)
    assert code == 2, out + err
    assert str(dropped.operation.name) in err
    assert dropped.name in err
    admin = secured_kafka.client_config()
    assert read_topic_as(admin, topic, timeout=2) == [], "nothing sent"
    assert not any(dlq + PARKED_SUFFIX in t for t in secured_kafka.admin.list_topics(timeout=10).topics), "none parked"
