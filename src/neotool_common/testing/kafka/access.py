"""SCRAM users and ACLs for tests on a secured cluster, through the admin client.

::

    access = Access(secured_kafka.admin)
    access.create_user("orders-consumer", password)
    access.grant("User:orders-consumer", [read_topic("orders.v1"), read_group("orders"), write_topic("orders.v1.dlq")])

Each grant is an :class:`Acl` (allow, on a literal or prefixed resource name, from any host); :meth:`Access.grant`
and :meth:`Access.revoke` wait until the brokers apply them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._acl import AclBinding, AclBindingFilter, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.admin._scram import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

__all__ = [
    "Access",
    "Acl",
    "create_topic_acl",
    "describe_group",
    "describe_topic",
    "read_group",
    "read_topic",
    "write_topic",
]

_TIMEOUT_S = 30.0
# How long the brokers take to apply an ACL change after the controller accepted it.
_PROPAGATION_S = 1.0


@dataclass(frozen=True)
class Acl:
    """One allowed operation on one resource (``prefixed``: every name starting with ``name``)."""

    resource: ResourceType
    name: str
    operation: AclOperation
    prefixed: bool = False

    def binding(self, principal: str) -> AclBinding:
        pattern = ResourcePatternType.PREFIXED if self.prefixed else ResourcePatternType.LITERAL
        return AclBinding(self.resource, self.name, pattern, principal, "*", self.operation, AclPermissionType.ALLOW)

    def binding_filter(self, principal: str) -> AclBindingFilter:
        pattern = ResourcePatternType.PREFIXED if self.prefixed else ResourcePatternType.LITERAL
        return AclBindingFilter(
            self.resource, self.name, pattern, principal, "*", self.operation, AclPermissionType.ALLOW
        )

    def __str__(self) -> str:
        kind = "prefixed " if self.prefixed else ""
        return f"{self.operation.name} on {kind}{self.resource.name.lower()} {self.name}"


def read_topic(name: str, prefixed: bool = False) -> Acl:
    return Acl(ResourceType.TOPIC, name, AclOperation.READ, prefixed)


def write_topic(name: str, prefixed: bool = False) -> Acl:
    return Acl(ResourceType.TOPIC, name, AclOperation.WRITE, prefixed)


def describe_topic(name: str, prefixed: bool = False) -> Acl:
    return Acl(ResourceType.TOPIC, name, AclOperation.DESCRIBE, prefixed)


def create_topic_acl(name: str, prefixed: bool = False) -> Acl:
    return Acl(ResourceType.TOPIC, name, AclOperation.CREATE, prefixed)


def read_group(name: str, prefixed: bool = False) -> Acl:
    return Acl(ResourceType.GROUP, name, AclOperation.READ, prefixed)


def describe_group(name: str, prefixed: bool = False) -> Acl:
    return Acl(ResourceType.GROUP, name, AclOperation.DESCRIBE, prefixed)


class Access:
    """Users and ACLs of a secured cluster, managed by a super user's admin client."""

    def __init__(self, admin: AdminClient) -> None:
        self._admin = admin

    def create_user(self, name: str, password: str, iterations: int = 4096) -> None:
        """Create (or change the password of) SCRAM-SHA-512 user ``name``."""
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, iterations)
        upsert = UserScramCredentialUpsertion(name, info, password.encode())
        for future in self._admin.alter_user_scram_credentials([upsert]).values():
            future.result(_TIMEOUT_S)
        time.sleep(_PROPAGATION_S)

    def delete_user(self, name: str) -> None:
        deletion = UserScramCredentialDeletion(name, ScramMechanism.SCRAM_SHA_512)
        for future in self._admin.alter_user_scram_credentials([deletion]).values():
            future.result(_TIMEOUT_S)

    def grant(self, principal: str, acls: Iterable[Acl]) -> None:
        """Allow ``principal`` (``User:<name>``) each of ``acls``."""
        bindings = [acl.binding(principal) for acl in acls]
        if not bindings:
            return
        for future in self._admin.create_acls(bindings).values():
            future.result(_TIMEOUT_S)
        time.sleep(_PROPAGATION_S)

    def revoke(self, principal: str, acls: Iterable[Acl]) -> None:
        """Take each of ``acls`` away from ``principal``."""
        filters = [acl.binding_filter(principal) for acl in acls]
        if not filters:
            return
        for future in self._admin.delete_acls(filters).values():
            future.result(_TIMEOUT_S)
        time.sleep(_PROPAGATION_S)

    def acls_of(self, principal: str) -> list[AclBinding]:
        """Every ACL that names ``principal``."""
        anything: Any = None  # a filter's None matches any name and host (confluent-kafka's stubs say str)
        query = AclBindingFilter(
            ResourceType.ANY, anything, ResourcePatternType.ANY, principal, anything, AclOperation.ANY,
            AclPermissionType.ANY,
        )  # fmt: skip
        return list(self._admin.describe_acls(query).result(_TIMEOUT_S))
