"""Least privilege for batches (docs/operating.md): a publisher, an announcing runner with a retry tier and
``neotool-batch``, each with exactly its documented ACLs, take one batch from publication to its announcement."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from neotool_common.batches.settings import BatchSettings
from neotool_common.cli import batch as batch_cli
from neotool_common.config.connection import KafkaConnection
from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.policies.retry_topics import retry_topic
from neotool_common.producing.producer import EnvelopeProducer
from neotool_common.testing.harness import running
from neotool_common.testing.kafka.access import describe_group, describe_topic, read_topic, write_topic
from neotool_common.testing.kafka.secured import SecuredKafkaCluster
from neotool_common.testing.logs import capture_logs
from neotool_common.testing.secured import read_topic_as

from .runner_support import RecordingConsumer, settings_for
from .security_support import Principal, runner_acls

pytestmark = pytest.mark.kafka

DELAY_MS = 200


def refusals(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Log lines about something refused (a fresh broker's "coordinator load in progress" is not)."""
    return [e for e in events if e["level"] in ("warning", "error") and "authoriz" in json.dumps(e).lower()]


def test_publisher_announcing_runner_and_cli_each_need_only_their_documented_acls(
    secured_kafka: SecuredKafkaCluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, suffix = secured_kafka, uuid.uuid4().hex[:8]
    topic, group = cluster.create_topic(f"t.acl-batch.{suffix}"), f"g-{suffix}"
    dlq, manifests, done = dlq_topic_for(topic), f"{topic}.batches", f"{topic}.batches.done"
    tier = retry_topic(topic, group, DELAY_MS)
    for name in (dlq, tier):
        cluster.create_topic(name)
    for name in (manifests, done):
        cluster.create_topic(name, config={"cleanup.policy": "compact"})

    publisher = Principal(cluster, [write_topic(topic), write_topic(manifests)])
    with capture_logs() as published:
        connection = KafkaConnection.from_env(publisher.env())
        with EnvelopeProducer(connection) as producer, producer.batch(topic) as batch:
            for n in range(3):
                batch.publish({"n": n, "fail": int(n == 0)}, record_id=f"r-{n}")
    assert refusals(published) == []

    runner_rights = [*runner_acls(topic, group), read_topic(tier), write_topic(tier)]
    runner_rights += [read_topic(manifests), read_topic(dlq), read_topic(done), write_topic(done)]
    settings = settings_for(
        cluster.bootstrap_servers, topic, group, RETRY_MAX_ATTEMPTS="1", RETRY_TOPIC_DELAYS_MS=str(DELAY_MS),
        **Principal(cluster, runner_rights).env(),
    )  # fmt: skip
    runner = RecordingConsumer(settings, batch_settings=BatchSettings(announce=True, watch_interval_ms=200))
    admin = cluster.client_config()
    with capture_logs() as events, running(runner):
        (announcement,) = read_topic_as(admin, done, expect=1, timeout=60)
    assert announcement.key == f"{batch.batch_id}/{group}".encode()
    assert json.loads(announcement.value or b"{}")["state"] == "complete"
    assert refusals(events) == []

    cli = Principal(cluster, [describe_topic(topic), describe_group(group), *map(read_topic, (manifests, dlq, tier))])
    for name, value in cli.env().items():
        monkeypatch.setenv(name, value)
    with capture_logs() as asked:
        code = batch_cli.main(["status", batch.batch_id, "--topic", topic, "--group", group, "--json"])
    document = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (code, document["state"], document["records_processed"]) == (0, "complete", 3)
    assert refusals(asked) == []
