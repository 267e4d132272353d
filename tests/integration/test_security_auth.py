"""Authentication on a secured broker: SCRAM over TLS and mutual TLS work; the failures end the way they should."""

from __future__ import annotations

import uuid

import pytest

from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.producing.producer import EnvelopeProducer
from neotool_common.testing.harness import running, wait_until
from neotool_common.testing.kafka.access import Access, write_topic
from neotool_common.testing.kafka.secured import SecuredKafkaCluster
from neotool_common.testing.secured import committed_offsets_as, read_topic_as

from .runner_support import RecordingConsumer, settings_for
from .security_support import Principal, runner_acls

pytestmark = pytest.mark.kafka


def topics(cluster: SecuredKafkaCluster) -> str:
    topic = cluster.create_topic(f"t.sec.{uuid.uuid4().hex[:8]}")
    cluster.create_topic(dlq_topic_for(topic))
    return topic


def publish(env: dict[str, str], topic: str, records: dict[str, dict[str, object]]) -> None:
    with EnvelopeProducer.from_env(env) as producer:
        for record_id, payload in records.items():
            producer.publish(topic, payload, record_id=record_id, key=record_id.encode())
        report = producer.flush(30)
    assert report.delivered == len(records), report


def run_and_check(cluster: SecuredKafkaCluster, env: dict[str, str], topic: str, group: str) -> None:
    publish(env, topic, {"a": {"n": 1}, "p": {"poison": True}, "b": {"n": 2}})
    runner = RecordingConsumer(settings_for(env["KAFKA_BROKERS"], topic, group, **env))
    with running(runner):
        wait_until(lambda: [m.record_id for m in runner.processed] == ["a", "b"], what="the good records")
        wait_until(
            lambda: committed_offsets_as(cluster.client_config(), group, topic, 1)[0] == 3, what="commit past all"
        )
    (dead,) = read_topic_as(cluster.client_config(), dlq_topic_for(topic), expect=1)
    assert dead.header("dlq.reason") == "poison"


def test_runner_and_envelope_producer_over_scram_with_least_privilege(secured_kafka: SecuredKafkaCluster) -> None:
    topic = topics(secured_kafka)
    group = f"g-{uuid.uuid4().hex[:8]}"
    user = Principal(secured_kafka, [*runner_acls(topic, group), write_topic(topic)])
    run_and_check(secured_kafka, user.env(), topic, group)


def test_runner_and_envelope_producer_over_mutual_tls(secured_kafka: SecuredKafkaCluster) -> None:
    topic = topics(secured_kafka)
    group = f"g-{uuid.uuid4().hex[:8]}"
    name = f"svc-{uuid.uuid4().hex[:6]}"
    identity = secured_kafka.issue_client_certificate(name)
    Access(secured_kafka.admin).grant(f"User:{name}", [*runner_acls(topic, group), write_topic(topic)])
    run_and_check(secured_kafka, secured_kafka.mtls_env(identity), topic, group)


@pytest.mark.slow
def test_the_runner_over_scram_on_three_secured_nodes(secured_kafka_cluster3: SecuredKafkaCluster) -> None:
    topic = topics(secured_kafka_cluster3)
    group = f"g-{uuid.uuid4().hex[:8]}"
    user = Principal(secured_kafka_cluster3, [*runner_acls(topic, group), write_topic(topic)])
    run_and_check(secured_kafka_cluster3, user.env(), topic, group)
