"""Shared pieces of the secured-broker tests: principals with exactly the ACLs a component needs."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable

from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.testing.kafka.access import (
    Access,
    Acl,
    read_group,
    read_topic,
    write_topic,
)
from neotool_common.testing.kafka.secured import SecuredKafkaCluster


def runner_acls(topic: str, group: str) -> list[Acl]:
    """The runner's least privilege (docs/operating.md, "Security"): read the source and the group, write the DLQ.

    READ implies DESCRIBE, which the lag monitor's ``list_offsets`` (topic) and its offset reader's OffsetFetch
    (``Consumer.committed()``: group and topic) need; WRITE on the DLQ implies DESCRIBE, which the start-up check
    of the DLQ topic needs.
    """
    return [read_topic(topic), read_group(group), write_topic(dlq_topic_for(topic))]


class Principal:
    """A SCRAM user made for one test, with the ACLs it is given."""

    def __init__(self, cluster: SecuredKafkaCluster, acls: Iterable[Acl] = ()) -> None:
        self.cluster = cluster
        self.name = f"u-{uuid.uuid4().hex[:8]}"
        self.password = secrets.token_urlsafe(16)
        self.access = Access(cluster.admin)
        self.access.create_user(self.name, self.password)
        self.grant(acls)

    @property
    def principal(self) -> str:
        return f"User:{self.name}"

    def grant(self, acls: Iterable[Acl]) -> None:
        self.access.grant(self.principal, list(acls))

    def revoke(self, acls: Iterable[Acl]) -> None:
        self.access.revoke(self.principal, list(acls))

    def env(self) -> dict[str, str]:
        return self.cluster.scram_env(self.name, self.password)

    def config(self) -> dict[str, str]:
        return self.cluster.scram_config(self.name, self.password)
