"""Least privilege with retry tiers: the documented ACLs are enough to pass a record through a tier; one missing
tier right is named, with its topic and operation, as the runner names a missing right on a source or the DLQ."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.policies.retry_topics import retry_topic
from neotool_common.testing.harness import running, wait_until
from neotool_common.testing.kafka.access import Acl, read_topic, write_topic
from neotool_common.testing.kafka.secured import SecuredKafkaCluster
from neotool_common.testing.logs import capture_logs
from neotool_common.testing.secured import committed_offsets_as, read_topic_as

from .liveness_support import ExitCode
from .runner_support import RecordingConsumer, envelope, produce, settings_for
from .security_support import Principal, runner_acls

pytestmark = pytest.mark.kafka

DELAY_MS = 200
IDS = ["a", "b", "c"]  # "a" fails once: it passes through the tier


def tiered(cluster: SecuredKafkaCluster) -> tuple[str, str, str]:
    """A source with its DLQ and one tier for a new group: (source, group, tier)."""
    topic, group = cluster.create_topic(f"t.acl-tier.{uuid.uuid4().hex[:8]}"), f"g-{uuid.uuid4().hex[:8]}"
    cluster.create_topic(dlq_topic_for(topic))
    tier = cluster.create_topic(retry_topic(topic, group, DELAY_MS))
    records = [(i.encode(), envelope(i, {"fail": int(i == "a")})) for i in IDS]
    produce(cluster.bootstrap_servers, topic, records, config=cluster.client_config())
    return topic, group, tier


def tier_acls(tier: str) -> list[Acl]:
    """What a runner with tiers needs besides :func:`runner_acls` (docs/operating.md): READ and WRITE on each tier."""
    return [read_topic(tier), write_topic(tier)]


def runner_for(user: Principal, topic: str, group: str, **env: str) -> RecordingConsumer:
    settings = settings_for(
        user.cluster.bootstrap_servers, topic, group, RETRY_MAX_ATTEMPTS="1", RETRY_TOPIC_DELAYS_MS=str(DELAY_MS),
        **user.env(), **env,
    )  # fmt: skip
    return RecordingConsumer(settings)


def test_the_documented_acls_are_enough_for_a_record_to_pass_through_a_tier(secured_kafka: SecuredKafkaCluster) -> None:
    topic, group, tier = tiered(secured_kafka)
    runner = runner_for(Principal(secured_kafka, runner_acls(topic, group) + tier_acls(tier)), topic, group)
    admin = secured_kafka.client_config()
    with capture_logs() as events, running(runner):
        wait_until(lambda: sorted(m.record_id for m in runner.processed) == IDS, what="every record")
        wait_until(lambda: committed_offsets_as(admin, group, topic, 1)[0] == len(IDS), what="the source commit")
        wait_until(lambda: committed_offsets_as(admin, group, tier, 1)[0] == 1, what="the tier commit")
    assert [(m.record_id, m.topic) for m in runner.processed if m.record_id == "a"] == [("a", tier)]
    assert read_topic_as(admin, dlq_topic_for(topic)) == []
    expected = {"processing failed; retrying through a retry topic"}
    warnings = [e["event"] for e in events if e["level"] in ("warning", "error") and e["event"] not in expected]
    assert warnings == [], "no check, refresh, read or write was refused"


def test_without_read_on_its_tier_the_runner_exits_1_with_one_error_line_naming_the_tier_and_read(
    secured_kafka: SecuredKafkaCluster,
) -> None:
    topic, group, tier = tiered(secured_kafka)
    user = Principal(secured_kafka, [*runner_acls(topic, group), write_topic(tier)])
    runner = runner_for(user, topic, group)
    with capture_logs() as events:
        assert ExitCode(runner).wait(40, f"READ on {tier} was refused", events) == 1
    errors = [e for e in events if e["level"] == "error"]
    assert len(errors) == 1, errors
    assert "TOPIC_AUTHORIZATION_FAILED" in errors[0]["error"]
    assert f"needs READ on topic {tier} (a retry tier topic of the group)" in errors[0]["error"]
    # The source is readable, so its records may be handled before the tier's refusal arrives (the two are
    # fetched side by side): whatever was, nothing is lost and nothing is handled twice.
    admin = secured_kafka.client_config()
    processed = [m.record_id for m in runner.processed]
    assert processed in ([], ["b"], ["b", "c"]), "each once, in order, and never a: the tier cannot be read"
    passed_on = processed + [(r.key or b"").decode() for r in read_topic_as(admin, tier)]
    assert set(IDS[: committed_offsets_as(admin, group, topic, 1)[0]]) <= set(passed_on), "committed only past handled"


def test_without_write_on_its_tier_the_write_is_resent_commits_wait_and_it_recovers_once_granted(
    secured_kafka: SecuredKafkaCluster,
) -> None:
    topic, group, tier = tiered(secured_kafka)
    user = Principal(secured_kafka, [*runner_acls(topic, group), read_topic(tier)])
    runner = runner_for(user, topic, group, DLQ_WRITE_TIMEOUT_MS="500")
    admin = secured_kafka.client_config()
    with capture_logs() as events, running(runner):
        wait_until(lambda: [m.record_id for m in runner.processed] == IDS[1:], what="the records after a")
        wait_until(lambda: refused(events), what="the refused tier write")
        assert committed_offsets_as(admin, group, topic, 1)[0] <= 0, "nothing committed past a"
        user.grant([write_topic(tier)])
        wait_until(lambda: "a" in [m.record_id for m in runner.processed], what="a, through the tier, once granted")
        wait_until(lambda: committed_offsets_as(admin, group, topic, 1)[0] == len(IDS), what="the source commit")
        wait_until(lambda: committed_offsets_as(admin, group, tier, 1)[0] == 1, what="the tier commit: drained")
    first = refused(events)[0]
    assert (first["retry_topic"], first["needs"], first["offset"]) == (tier, f"WRITE on topic {tier}", 0)
    assert "Topic authorization failed" in first["error"]
    count = runner.registry.get_sample_value
    labels = {"group": group, "topic": topic}
    assert (count("neotool_consumer_retry_tier_write_failures_total", {**labels, "tier": "1"}) or 0) >= 1
    assert count("neotool_consumer_dlq_write_failures_total", labels) in (None, 0.0), "not the DLQ's alert"
    assert [m.record_id for m in runner.processed] == [*IDS[1:], "a"], "every record once"
    assert read_topic_as(admin, dlq_topic_for(topic)) == []
    assert len(read_topic_as(admin, tier)) == 1, "the tier copy written once"


def refused(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event"].startswith("retry-topic write failed")]
