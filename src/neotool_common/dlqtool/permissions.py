"""Before a replay sends anything: does its principal hold every ACL the plan needs?

A replay that lacks ``WRITE`` on one target or ``CREATE`` on ``<dlq>.parked`` would send some records and stop
at the first refusal. :func:`missing_permissions` asks the brokers what the principal may do (the authorized
operations of ``DescribeTopicPartitions`` and ``DescribeGroups``, and a validate-only ``CreateTopics``) for the
targets of the dry-run plan, so that the replay can stop first (exit 2) naming what is missing. A target the
principal cannot even describe reads as missing to it, and is reported by the replay as before.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin._acl import AclOperation
from confluent_kafka.cimpl import NewTopic

from neotool_common.dlqtool.cluster import DlqCluster, TopicInfo
from neotool_common.dlqtool.decisions import Action, Decision

__all__ = ["missing_permissions"]


def missing_permissions(
    cluster: DlqCluster, dlq: TopicInfo, group: str, parked: str, decisions: Iterable[Decision]
) -> list[str]:
    """What the principal lacks for ``decisions`` (``WRITE on topic t``, ...); empty when it has it all."""
    plan = list(decisions)
    targets = sorted({d.target.topic for d in plan if d.action is Action.REPLAY and d.target})
    missing = [f"WRITE on topic {t}" for t in targets if not _may(cluster, t, AclOperation.WRITE)]
    if not _may_group(cluster, group):
        missing.append(f"READ on group {group}")
    if any(d.action is Action.PARK for d in plan):
        if cluster.exists(parked):
            missing += [] if _may(cluster, parked, AclOperation.WRITE) else [f"WRITE on topic {parked}"]
        elif not _may_create(cluster, dlq, parked):
            missing.append(f"CREATE on topic {parked}")
    return missing


def _may(cluster: DlqCluster, topic: str, operation: AclOperation) -> bool:
    try:
        futures = cluster.admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True)
        allowed = futures[topic].result(cluster.timeout_s).authorized_operations
    except KafkaException:
        return True  # not the place to decide: the replay reports a topic it cannot see
    return allowed is None or operation in allowed or AclOperation.ALL in allowed


def _may_group(cluster: DlqCluster, group: str) -> bool:
    try:
        futures = cluster.admin.describe_consumer_groups([group], include_authorized_operations=True)
        allowed = futures[group].result(cluster.timeout_s).authorized_operations
    except KafkaException as error:  # a group that does not exist yet is fine: the replay creates it
        return bool(error.args[0].code() != KafkaError.GROUP_AUTHORIZATION_FAILED)
    return allowed is None or AclOperation.READ in allowed or AclOperation.ALL in allowed


def _may_create(cluster: DlqCluster, like: TopicInfo, name: str) -> bool:
    futures = cluster.admin.create_topics(
        [NewTopic(name, like.partitions, like.replication_factor)], validate_only=True
    )
    try:
        futures[name].result(cluster.timeout_s)
    except KafkaException as error:
        return "AUTHORIZATION" not in error.args[0].name()
    return True
