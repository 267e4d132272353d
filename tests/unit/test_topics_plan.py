"""neotool-topics' plan and run against a fake cluster: what is planned, compared, created and handed over."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pytest

from neotool_common.cli.topics import alter_commands, handover_commands, render, retry_tiers_of, topics_of
from neotool_common.deadletter.publisher import DlqPolicy
from neotool_common.errors import ConfigurationError
from neotool_common.provisioning.cluster import DENIED, EXISTED
from neotool_common.provisioning.plan import (
    DEFAULT_DLQ_RETENTION_MS,
    DEFAULT_MAX_MESSAGE_BYTES,
    DLQ_HEADER_HEADROOM_BYTES,
    ExistingTopic,
    Role,
    TopicSpec,
    differences,
    dlq_header_bytes_bound,
    plan_topics,
)
from neotool_common.provisioning.provision import ProvisionRequest, Status, provision

SOURCE = "people.ingest.v1"
DLQ_LIMIT = str(DEFAULT_MAX_MESSAGE_BYTES + DLQ_HEADER_HEADROOM_BYTES)


@dataclass
class FakeAdmin:
    topics: dict[str, ExistingTopic] = field(default_factory=dict)
    brokers: int = 1
    refuse: str | None = None  # DENIED, or an error text for every create
    created: list[TopicSpec] = field(default_factory=list)

    def broker_count(self) -> int:
        return self.brokers

    def existing(self, names: Iterable[str], config_names: Iterable[str]) -> dict[str, ExistingTopic]:
        return {name: self.topics[name] for name in names if name in self.topics}

    def create(self, specs: Sequence[TopicSpec]) -> dict[str, str | None]:
        if self.refuse is not None:
            return {spec.name: self.refuse for spec in specs}
        for spec in specs:
            self.created.append(spec)
            self.topics[spec.name] = ExistingTopic(spec.name, spec.partitions, spec.replication_factor, spec.configs)
        return {spec.name: None for spec in specs}


def test_the_headroom_covers_the_largest_dlq_headers() -> None:
    assert dlq_header_bytes_bound(DlqPolicy()) < DLQ_HEADER_HEADROOM_BYTES


def test_a_dlq_and_its_parked_topic_follow_their_existing_source() -> None:
    source = ExistingTopic(SOURCE, 6, 3, {"max.message.bytes": "5000000"})
    specs = plan_topics([SOURCE], {SOURCE: source}, with_source=False, partitions=1, replication_factor=1)
    assert [(s.name, s.role, s.partitions, s.replication_factor) for s in specs] == [
        (f"{SOURCE}.dlq", Role.DLQ, 6, 3),
        (f"{SOURCE}.dlq.parked", Role.PARKED, 6, 3),
    ]
    assert specs[0].configs == {
        "cleanup.policy": "delete",
        "retention.ms": str(DEFAULT_DLQ_RETENTION_MS),
        "max.message.bytes": str(5_000_000 + DLQ_HEADER_HEADROOM_BYTES),
        "min.insync.replicas": "2",  # three replicas: acks=all survives one broker down
    }
    assert specs[1].configs == {**specs[0].configs, "retention.ms": "-1"}  # parked records wait for a decision


def test_with_source_plans_the_source_first_with_the_given_partitions() -> None:
    specs = plan_topics(["a.b.v1", "a.b.v1"], {}, with_source=True, partitions=4, replication_factor=2)
    assert [s.name for s in specs] == ["a.b.v1", "a.b.v1.dlq", "a.b.v1.dlq.parked"]
    assert specs[0].configs == {}
    assert {s.partitions for s in specs} == {4}
    assert specs[1].configs["max.message.bytes"] == DLQ_LIMIT


def test_differences_accept_more_and_report_less() -> None:
    spec = plan_topics(["x.y.v1"], {}, with_source=False, partitions=3, replication_factor=1)[0]
    longer = {**spec.configs, "retention.ms": "-1", "max.message.bytes": "9999999"}
    assert differences(spec, ExistingTopic(spec.name, 3, 1, longer)) == []
    parked = plan_topics(["x.y.v1"], {}, with_source=False, partitions=3, replication_factor=1)[1]
    assert differences(parked, ExistingTopic(parked.name, 3, 1, spec.configs)) == [
        f"retention.ms={DEFAULT_DLQ_RETENTION_MS}, wanted -1"
    ]
    short = {**spec.configs, "retention.ms": "3600000", "cleanup.policy": "compact"}
    assert differences(spec, ExistingTopic(spec.name, 1, 1, short)) == [
        "partitions=1, wanted 3 (as many as its source)",
        "cleanup.policy=compact, wanted delete",
        f"retention.ms=3600000, wanted at least {DEFAULT_DLQ_RETENTION_MS}",
    ]
    assert differences(spec, ExistingTopic(spec.name, 3, 1, {}))[0] == (
        "cleanup.policy=unknown (not readable), wanted delete"
    )


def test_a_run_creates_what_is_missing_and_a_second_run_changes_nothing() -> None:
    admin = FakeAdmin(brokers=5)
    first = provision(ProvisionRequest((SOURCE,), with_source=True), admin)
    assert [(o.spec.name, o.status) for o in first.outcomes] == [
        (SOURCE, Status.CREATED),
        (f"{SOURCE}.dlq", Status.CREATED),
        (f"{SOURCE}.dlq.parked", Status.CREATED),
    ]
    assert {(s.partitions, s.replication_factor) for s in admin.created} == {(3, 3)}  # min(3, brokers)
    second = provision(ProvisionRequest((SOURCE,), with_source=True), admin)
    assert {o.status for o in second.outcomes} == {Status.EXISTS}
    assert len(admin.created) == 3
    assert first.exit_code == second.exit_code == 0


def test_a_dry_run_creates_nothing_and_prints_the_commands() -> None:
    admin = FakeAdmin()
    report = provision(ProvisionRequest((SOURCE,), with_source=True, partitions=2, dry_run=True), admin)
    assert {o.status for o in report.outcomes} == {Status.WOULD_CREATE}
    assert admin.created == []
    text = render(report, "127.0.0.1:9092", dry_run=True)
    assert f"would create  {SOURCE:<27}  partitions=2 replication.factor=1" in text.splitlines()
    assert "Dry run: nothing was created" in text
    assert report.exit_code == 0


def test_without_rights_the_topics_are_handed_over_with_their_configs() -> None:
    admin = FakeAdmin(topics={SOURCE: ExistingTopic(SOURCE, 3, 1, {"max.message.bytes": "1048588"})}, refuse=DENIED)
    report = provision(ProvisionRequest((SOURCE,)), admin)
    assert [o.status for o in report.outcomes] == [Status.DENIED, Status.DENIED]
    assert report.exit_code == 3
    text = render(report, "broker:9092", dry_run=False)
    assert "Not authorized to create topics on broker:9092" in text
    assert (
        f'  kafka-topics.sh --bootstrap-server "$KAFKA_BROKERS" --create --if-not-exists --topic {SOURCE}.dlq '
        f"--partitions 3 --replication-factor 1 --config cleanup.policy=delete --config max.message.bytes={DLQ_LIMIT}"
        f" --config retention.ms={DEFAULT_DLQ_RETENTION_MS}"
    ) in text.splitlines()


def test_existing_topics_that_differ_exit_1_and_other_refusals_exit_4() -> None:
    dlq = ExistingTopic(f"{SOURCE}.dlq", 1, 1, {"cleanup.policy": "delete"})
    admin = FakeAdmin(topics={SOURCE: ExistingTopic(SOURCE, 3, 1), dlq.name: dlq}, refuse="Invalid config")
    report = provision(ProvisionRequest((SOURCE,)), admin)
    assert [o.status for o in report.outcomes] == [Status.DIFFERS, Status.FAILED]
    assert report.exit_code == 4
    admin.refuse = EXISTED
    assert provision(ProvisionRequest((SOURCE,)), admin).exit_code == 1


def test_a_topic_that_differs_gets_the_commands_that_bring_it_in_line() -> None:
    dlq = ExistingTopic(f"{SOURCE}.dlq", 1, 1, {"cleanup.policy": "compact", "retention.ms": "-1"})
    parked = ExistingTopic(f"{SOURCE}.dlq.parked", 3, 1, {"cleanup.policy": "delete", "retention.ms": "-1"})
    topics = {SOURCE: ExistingTopic(SOURCE, 3, 1), dlq.name: dlq, parked.name: parked}
    report = provision(ProvisionRequest((SOURCE,)), FakeAdmin(topics=topics))
    assert report.exit_code == 1
    assert alter_commands(report.with_status(Status.DIFFERS)) == [
        '  kafka-configs.sh --bootstrap-server "$KAFKA_BROKERS" --alter --entity-type topics --entity-name '
        f"{SOURCE}.dlq --add-config cleanup.policy=delete,max.message.bytes={DLQ_LIMIT}",
        f'  kafka-topics.sh --bootstrap-server "$KAFKA_BROKERS" --alter --topic {SOURCE}.dlq --partitions 3',
        '  kafka-configs.sh --bootstrap-server "$KAFKA_BROKERS" --alter --entity-type topics --entity-name '
        f"{SOURCE}.dlq.parked --add-config max.message.bytes={DLQ_LIMIT}",
    ]


def test_a_missing_source_needs_with_source_or_partitions() -> None:
    with pytest.raises(ConfigurationError, match="--with-source"):
        provision(ProvisionRequest((SOURCE,)), FakeAdmin())
    report = provision(ProvisionRequest((SOURCE,), partitions=6, dry_run=True), FakeAdmin())
    assert [o.spec.partitions for o in report.outcomes] == [6, 6]


def test_topics_come_from_kafka_topics_else_from_the_consumer_class() -> None:
    assert topics_of("tests.unit.test_topics_plan:Reader", {"KAFKA_TOPICS": " a.b.v1, c.d.v1 "}) == ("a.b.v1", "c.d.v1")
    assert topics_of("tests.unit.test_topics_plan:Reader", {}) == ("reader.topic.v1",)
    with pytest.raises(ConfigurationError, match="--consumer: 'nocolon' is not module:Class"):
        topics_of("nocolon", {})
    with pytest.raises(ConfigurationError, match="cannot load"):
        topics_of("tests.unit.test_topics_plan:Missing", {})
    with pytest.raises(ConfigurationError, match="KAFKA_TOPICS"):
        ProvisionRequest(())
    with pytest.raises(ConfigurationError, match=r"a\.b\.v1\.dlq is provisioned with its source: name the source"):
        ProvisionRequest(("a.b.v1.dlq",))


def test_handover_quotes_what_a_shell_would_split() -> None:
    spec = TopicSpec("odd name", Role.DLQ, 1, 1, {"a": "b c"})
    command = handover_commands([spec])[0]
    assert command.endswith("--topic 'odd name' --partitions 1 --replication-factor 1 --config 'a=b c'")


def test_a_group_with_delay_tiers_gets_one_retry_topic_per_tier_after_the_dlqs_and_one_without_none() -> None:
    source = ExistingTopic(SOURCE, 6, 3, {})
    specs = plan_topics([SOURCE], {SOURCE: source}, with_source=False, partitions=1, replication_factor=1,
                        retry_group="enrichment", retry_delays_ms=(30_000, 3_600_000))  # fmt: skip
    retry = [(s.name, s.role, s.partitions, s.replication_factor) for s in specs if s.role is Role.RETRY]
    assert retry == [
        (f"{SOURCE}.retry.enrichment.30s", Role.RETRY, 6, 3),
        (f"{SOURCE}.retry.enrichment.1h", Role.RETRY, 6, 3),
    ]
    assert specs[-1].configs == specs[0].configs  # kept as long as a DLQ: a copy outlives the outage it waits out
    report = provision(ProvisionRequest((SOURCE,), group_id="enrichment"), FakeAdmin({SOURCE: source}))
    assert all(o.spec.role is not Role.RETRY for o in report.outcomes)


def test_the_retry_tiers_come_from_the_environment_else_from_the_consumer_class() -> None:
    assert retry_tiers_of("tests.unit.test_topics_plan:Reader", {}) == {
        "group_id": "readers",
        "retry_delays_ms": (5000,),
    }
    env = {"RETRY_TOPIC_DELAYS_MS": "1000,2000", "KAFKA_GROUP_ID": "other"}
    assert retry_tiers_of(None, env) == {"group_id": "other", "retry_delays_ms": (1000, 2000)}
    with pytest.raises(ConfigurationError, match="RETRY_TOPIC_DELAYS_MS"):
        retry_tiers_of(None, {"RETRY_TOPIC_DELAYS_MS": "-5"})
    with pytest.raises(ConfigurationError, match="KAFKA_GROUP_ID"):
        ProvisionRequest((SOURCE,), retry_delays_ms=(1000,))


class Reader:
    topics = ("reader.topic.v1",)
    group_id = "readers"
    retry_topic_delays_ms = (5000,)


def test_with_batches_plans_the_compacted_manifest_and_announcement_topics_once() -> None:
    admin = FakeAdmin(brokers=5)
    first = provision(ProvisionRequest((SOURCE,), with_source=True, with_batches=True), admin)
    batches = [o.spec for o in first.outcomes if o.spec.role is Role.BATCHES]
    assert [(s.name, s.partitions, s.configs["cleanup.policy"]) for s in batches] == [
        (f"{SOURCE}.batches", 1, "compact"),
        (f"{SOURCE}.batches.done", 1, "compact"),
    ]
    second = provision(ProvisionRequest((SOURCE,), with_source=True, with_batches=True), admin)
    assert {o.status for o in second.outcomes} == {Status.EXISTS}
