"""The admin calls of provisioning: what exists (partitions, replicas, configs), how many brokers, create.

Every failure to reach the cluster is a :class:`ConfigurationError` naming ``KAFKA_BROKERS`` (one line, exit 2);
a refusal to create or describe for want of rights is kept per topic as :data:`DENIED`, so the caller can hand
the plan over instead of failing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType  # type: ignore[attr-defined]
from confluent_kafka.cimpl import NewTopic

from neotool_common.config.clients import ClientKind
from neotool_common.config.connection import KafkaConnection
from neotool_common.errors import ConfigurationError
from neotool_common.provisioning.plan import ExistingTopic, TopicSpec

__all__ = ["DENIED", "EXISTED", "KafkaTopicAdmin", "TopicAdmin", "is_denied"]

DENIED: Final = "denied"  # not authorized: hand the topic over to whoever has the rights
EXISTED: Final = "existed"  # someone created it between our look and our create: fine
_DENIALS: Final = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.POLICY_VIOLATION,  # a create-topic policy refused it: also for whoever sets the policy
    }
)


def is_denied(error: KafkaError) -> bool:
    return error.code() in _DENIALS


class TopicAdmin(Protocol):
    """What provisioning asks of a cluster (the Kafka one below; a fake in the unit tests)."""

    def broker_count(self) -> int: ...

    def existing(self, names: Iterable[str], config_names: Iterable[str]) -> dict[str, ExistingTopic]:
        """The topics of ``names`` that exist, with the values of ``config_names`` (missing when not readable)."""

    def create(self, specs: Sequence[TopicSpec]) -> dict[str, str | None]:
        """Create each topic; per name ``None`` (created), :data:`EXISTED`, :data:`DENIED` or the error text."""


@dataclass
class KafkaTopicAdmin:
    """:class:`TopicAdmin` over confluent-kafka's ``AdminClient`` of ``connection`` (``ClientKind.ADMIN``)."""

    connection: KafkaConnection
    timeout_s: float = 15.0
    _first_error: list[str] = field(default_factory=list, repr=False)
    _client: AdminClient | None = field(default=None, repr=False)

    @property
    def client(self) -> AdminClient:
        if self._client is None:
            config: dict[str, Any] = {
                "client.id": "neotool-topics",
                "log_level": 0,  # its transport errors come back as one line through error_cb instead
                "error_cb": self._remember,
                **self.connection.client_config(ClientKind.ADMIN),
            }
            self._client = AdminClient(config)
        return self._client

    def _remember(self, error: KafkaError) -> None:
        if not self._first_error:
            self._first_error.append(error.str())

    def _unreachable(self, error: KafkaException) -> ConfigurationError:
        detail = self._first_error[0] if self._first_error else error.args[0].str()
        return ConfigurationError("KAFKA_BROKERS", f"cannot reach {self.connection.brokers}: {detail}")

    def _metadata(self) -> Any:
        try:
            return self.client.list_topics(timeout=self.timeout_s)
        except KafkaException as error:
            raise self._unreachable(error) from None

    def broker_count(self) -> int:
        return len(self._metadata().brokers)

    def existing(self, names: Iterable[str], config_names: Iterable[str]) -> dict[str, ExistingTopic]:
        topics = self._metadata().topics
        found = {name: topics[name] for name in names if name in topics and topics[name].error is None}
        configs = self._configs(list(found), frozenset(config_names))
        return {
            name: ExistingTopic(
                name,
                partitions=len(meta.partitions),
                replication_factor=min((len(p.replicas) for p in meta.partitions.values()), default=0),
                configs=configs.get(name, {}),
            )
            for name, meta in found.items()
        }

    def _configs(self, names: list[str], wanted: frozenset[str]) -> dict[str, dict[str, str]]:
        if not names:
            return {}
        futures = self.client.describe_configs([ConfigResource(ResourceType.TOPIC, name) for name in names])
        configs: dict[str, dict[str, str]] = {}
        for resource, future in futures.items():
            try:
                entries: Mapping[str, Any] = future.result(self.timeout_s)
            except KafkaException:
                continue  # not allowed to describe it: compared as "unknown", reported as a difference
            configs[resource.name] = {k: e.value for k, e in entries.items() if k in wanted and e.value is not None}
        return configs

    def create(self, specs: Sequence[TopicSpec]) -> dict[str, str | None]:
        if not specs:
            return {}
        new = [NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.configs)) for s in specs]
        results: dict[str, str | None] = {}
        for name, future in self.client.create_topics(new, request_timeout=self.timeout_s).items():
            try:
                future.result(self.timeout_s)
                results[name] = None
            except KafkaException as exc:
                results[name] = _outcome(exc.args[0])
        return results


def _outcome(error: KafkaError) -> str:
    if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
        return EXISTED
    if is_denied(error):
        return DENIED
    return error.str()
