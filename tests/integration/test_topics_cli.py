"""neotool-topics against the real broker: it creates, a second run changes nothing, a dry run creates nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]

from neotool_common.cli.topics import main
from neotool_common.provisioning.plan import DEFAULT_MAX_MESSAGE_BYTES, DLQ_HEADER_HEADROOM_BYTES
from neotool_common.testing.kafka import KafkaEndpoint

pytestmark = pytest.mark.kafka


@pytest.fixture
def env(kafka: KafkaEndpoint, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("KAFKA_TOPICS", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAFKA_BROKERS", kafka.bootstrap_servers)
    return monkeypatch


def partitions(kafka: KafkaEndpoint, name: str) -> int | None:
    meta = kafka.admin.list_topics(name, timeout=10).topics.get(name)
    return None if meta is None or meta.error is not None else len(meta.partitions)


def test_creates_the_source_and_its_dlqs_then_a_second_run_changes_nothing(
    kafka: KafkaEndpoint, env: pytest.MonkeyPatch, topic_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("KAFKA_TOPICS", topic_name)
    assert main(["--with-source", "--partitions", "2"]) == 0
    first = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in first] == [
        ["created", topic_name],
        ["created", f"{topic_name}.dlq"],
        ["created", f"{topic_name}.dlq.parked"],
    ]
    assert [partitions(kafka, f"{topic_name}{s}") for s in ("", ".dlq", ".dlq.parked")] == [2, 2, 2]
    resource = ConfigResource(ResourceType.TOPIC, f"{topic_name}.dlq")
    configs = kafka.admin.describe_configs([resource])[resource].result(10)
    assert configs["max.message.bytes"].value == str(DEFAULT_MAX_MESSAGE_BYTES + DLQ_HEADER_HEADROOM_BYTES)
    assert configs["retention.ms"].value == str(30 * 24 * 3600 * 1000)

    assert main(["--with-source"]) == 0
    second = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in second] == [
        ["exists", topic_name],
        ["exists", f"{topic_name}.dlq"],
        ["exists", f"{topic_name}.dlq.parked"],
    ]


def test_a_dry_run_creates_nothing(
    kafka: KafkaEndpoint, env: pytest.MonkeyPatch, make_topic: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_topic(partitions=3)
    env.setenv("KAFKA_TOPICS", source)
    assert main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{source}.dlq partitions=3 replication.factor=1 cleanup.policy=delete" in " ".join(out.split())
    assert f"--topic {source}.dlq.parked --partitions 3" in out
    assert partitions(kafka, f"{source}.dlq") is None
    assert partitions(kafka, f"{source}.dlq.parked") is None


def test_an_existing_dlq_that_differs_is_reported_not_changed(
    kafka: KafkaEndpoint, env: pytest.MonkeyPatch, make_topic: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_topic(partitions=2)
    make_topic(partitions=1, name=f"{source}.dlq", config={"retention.ms": "60000"})
    env.setenv("KAFKA_TOPICS", source)
    assert main([]) == 1
    out = capsys.readouterr().out
    assert f"differs       {source}.dlq" in out
    assert "partitions=1, wanted 2 (as many as its source)" in out
    assert "retention.ms=60000, wanted at least" in out
    assert "Existing topics that differ were left as they are; to bring them in line:" in out
    assert (
        '  kafka-configs.sh --bootstrap-server "$KAFKA_BROKERS" --alter --entity-type topics '
        f"--entity-name {source}.dlq --add-config "
        f"max.message.bytes={DEFAULT_MAX_MESSAGE_BYTES + DLQ_HEADER_HEADROOM_BYTES},"
        f"retention.ms={30 * 24 * 3600 * 1000}"
    ) in out.splitlines()
    assert f'  kafka-topics.sh --bootstrap-server "$KAFKA_BROKERS" --alter --topic {source}.dlq --partitions 2' in out
    assert partitions(kafka, f"{source}.dlq") == 1


def test_an_unreachable_cluster_is_one_line_and_exit_2(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("KAFKA_BROKERS", "127.0.0.1:1")
    env.setenv("KAFKA_TOPICS", "people.ingest.v1")
    assert main(["--dry-run", "--timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("neotool-topics: KAFKA_BROKERS: cannot reach 127.0.0.1:1")
    assert len(err.splitlines()) == 1


class PeopleConsumer:
    """Stands for a consumer class: neotool-topics reads only its ``topics``."""

    topics: tuple[str, ...] = ()


def test_the_topics_come_from_the_consumer_class(
    kafka: KafkaEndpoint, env: pytest.MonkeyPatch, make_topic: Callable[..., str], capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_topic(partitions=2)
    env.setattr(PeopleConsumer, "topics", (source,))
    assert main(["--consumer", f"{__name__}:PeopleConsumer"]) == 0
    created = [line.split()[:2] for line in capsys.readouterr().out.splitlines()]
    assert created == [["created", f"{source}.dlq"], ["created", f"{source}.dlq.parked"]]
    assert partitions(kafka, f"{source}.dlq") == 2
