"""A reachable Kafka cluster, wherever it runs, and the admin helpers the tests and the demo need."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from neotool_common.config.client_logs import CLIENT_LOG

__all__ = ["TEST_GROUP_SETTINGS", "KafkaEndpoint"]


# Fast group membership for tests, under both group protocols. Classic: the client picks its session timeout
# (the broker rejects one below the minimum). Consumer protocol (KIP-848): the broker sets the session and the
# heartbeat, 45 s and 5 s by default, and a group may lower them (consumer.session.timeout.ms) down to the
# minimums; 6 s / 0.5 s make a vanished member expire as fast as the classic tests' 6 s sessions.
TEST_GROUP_SETTINGS: Mapping[str, str] = {
    "group.min.session.timeout.ms": "1000",
    "group.consumer.min.session.timeout.ms": "1000",
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.heartbeat.interval.ms": "100",
    "group.consumer.heartbeat.interval.ms": "500",
}


class KafkaEndpoint:
    """A reachable cluster: where it is, and a few admin helpers the tests and the demo need."""

    def __init__(self, bootstrap_servers: str, replication_factor: int = 1) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.replication_factor = replication_factor
        self._admin: AdminClient | None = None

    def client_config(self) -> dict[str, Any]:
        """What any client needs to reach this cluster with full rights (a secured one adds its admin login)."""
        return {"bootstrap.servers": self.bootstrap_servers, "logger": CLIENT_LOG}

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(self.client_config())
        return self._admin

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int | None = None,
        config: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> str:
        """Create ``name`` and wait until every partition has a leader. Idempotent."""
        rf = replication_factor or self.replication_factor
        futures = self.admin.create_topics([NewTopic(name, partitions, rf, config=dict(config or {}))])
        try:
            futures[name].result(timeout)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
        self.wait_for_topic(name, partitions, timeout)
        return name

    def wait_for_topic(self, name: str, partitions: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            meta = self.admin.list_topics(name, timeout=5).topics.get(name)
            if (
                meta is not None
                and meta.error is None
                and len(meta.partitions) == partitions
                and all(p.leader >= 0 for p in meta.partitions.values())
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {name} has no leader for all {partitions} partitions after {timeout}s")
            time.sleep(0.05)

    def delete_topic(self, name: str, timeout: float = 30.0) -> None:
        self.admin.delete_topics([name])[name].result(timeout)

    def log_tail(self, lines: int = 60) -> str:
        return ""
