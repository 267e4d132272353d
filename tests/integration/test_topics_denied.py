"""neotool-topics without the right to create topics, on a broker with ACLs: the hand-over and exit code 3.

A broker of its own (the session's has no authorizer): ``StandardAuthorizer``, everything allowed where no ACL is
found, then ``User:ANONYMOUS`` (every PLAINTEXT client) denied CREATE on the cluster and on topics under
``denied.``. Kafka then creates only topics the client may create one by one, and refuses the others with
``TOPIC_AUTHORIZATION_FAILED``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from neotool_common.cli.topics import main
from neotool_common.testing.kafka.cluster import LocalKafkaCluster

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

_AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "allow.everyone.if.no.acl.found": "true",
}
_ANYONE = "User:ANONYMOUS"


@pytest.fixture(scope="module")
def restricted_brokers() -> Iterator[str]:
    with LocalKafkaCluster(1, broker_config=_AUTHORIZER) as cluster:
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers, "log_level": 0})
        cluster_resource = (ResourceType.BROKER, "kafka-cluster", ResourcePatternType.LITERAL, _ANYONE, "*")
        acls = [
            AclBinding(*cluster_resource, AclOperation.ALL, AclPermissionType.ALLOW),
            AclBinding(*cluster_resource, AclOperation.CREATE, AclPermissionType.DENY),
            AclBinding(
                ResourceType.TOPIC,
                "denied.",
                ResourcePatternType.PREFIXED,
                _ANYONE,
                "*",
                AclOperation.CREATE,
                AclPermissionType.DENY,
            ),
        ]
        for future in admin.create_acls(acls).values():
            future.result(30)
        yield cluster.bootstrap_servers


def test_without_rights_the_exact_topics_and_configs_are_printed_and_it_exits_3(
    restricted_brokers: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BROKERS", restricted_brokers)
    monkeypatch.setenv("KAFKA_TOPICS", "denied.people.v1")
    assert main(["--with-source", "--partitions", "2"]) == 3
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out[:3]] == [
        ["denied", "denied.people.v1"],
        ["denied", "denied.people.v1.dlq"],
        ["denied", "denied.people.v1.dlq.parked"],
    ]
    assert out[4] == f"Not authorized to create topics on {restricted_brokers}; hand these commands to a cluster admin:"
    assert out[5:] == [
        '  kafka-topics.sh --bootstrap-server "$KAFKA_BROKERS" --create --if-not-exists --topic denied.people.v1 '
        "--partitions 2 --replication-factor 1",
        '  kafka-topics.sh --bootstrap-server "$KAFKA_BROKERS" --create --if-not-exists --topic denied.people.v1.dlq '
        "--partitions 2 --replication-factor 1 --config cleanup.policy=delete --config max.message.bytes=1114124 "
        "--config retention.ms=2592000000",
        '  kafka-topics.sh --bootstrap-server "$KAFKA_BROKERS" --create --if-not-exists --topic '
        "denied.people.v1.dlq.parked --partitions 2 --replication-factor 1 --config cleanup.policy=delete "
        "--config max.message.bytes=1114124 --config retention.ms=-1",
    ]


def test_topics_it_may_create_are_created_beside_the_denied_ones(
    restricted_brokers: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BROKERS", restricted_brokers)
    monkeypatch.setenv("KAFKA_TOPICS", "allowed.people.v1,denied.other.v1")
    assert main(["--with-source"]) == 3
    statuses = {line.split()[1]: line.split()[0] for line in capsys.readouterr().out.splitlines()[:6]}
    assert statuses == {
        "allowed.people.v1": "created",
        "allowed.people.v1.dlq": "created",
        "allowed.people.v1.dlq.parked": "created",
        "denied.other.v1": "denied",
        "denied.other.v1.dlq": "denied",
        "denied.other.v1.dlq.parked": "denied",
    }
