"""A local cluster that authenticates and authorizes every client, as production clusters do.

Each node listens on 127.0.0.1 three times:

* ``SECURE`` (:attr:`SecuredKafkaCluster.bootstrap_servers`): SASL_SSL with SCRAM-SHA-512;
* ``MTLS`` (:attr:`SecuredKafkaCluster.mtls_bootstrap_servers`): SSL that requires a client certificate, the
  principal being the certificate's CN (``User:<cn>``); the brokers talk to each other here;
* ``CONTROLLER``: the KRaft quorum, SSL with client certificates as well.

The certificates are made when the cluster starts (:mod:`.certs`): a CA, one broker certificate (SAN
``127.0.0.1`` and ``localhost``) and client certificates on demand. The SCRAM user ``admin`` is created when the
storage is formatted. Kafka's ``StandardAuthorizer`` runs with ``allow.everyone.if.no.acl.found=false``: only
``User:admin`` and ``User:broker`` (the super users) may do anything an ACL does not grant.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from neotool_common.config.client_logs import CLIENT_LOG
from neotool_common.testing.kafka.certs import CertificateAuthority, Identity
from neotool_common.testing.kafka.cluster import BrokerNode, LocalKafkaCluster, free_port
from neotool_common.testing.kafka.jars import KAFKA_VERSION

__all__ = ["ADMIN_USER", "BROKER_PRINCIPAL", "SCRAM_MECHANISM", "SecuredKafkaCluster"]

ADMIN_USER = "admin"
BROKER_PRINCIPAL = "User:broker"
SCRAM_MECHANISM = "SCRAM-SHA-512"
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"


class SecuredKafkaCluster(LocalKafkaCluster):
    """An N-node KRaft cluster with SCRAM over TLS, mutual TLS and ACLs (see the module's docstring)."""

    def __init__(
        self,
        nodes: int = 1,
        *,
        workdir: Path | None = None,
        version: str = KAFKA_VERSION,
        broker_config: Mapping[str, str] | None = None,
        heap: str = "512m",
        die_with_parent: bool = True,
    ) -> None:
        super().__init__(
            nodes,
            workdir=workdir,
            version=version,
            broker_config=broker_config,
            heap=heap,
            die_with_parent=die_with_parent,
        )
        self.mtls_ports = {node.node_id: free_port() for node in self.nodes}
        self.mtls_bootstrap_servers = ",".join(f"127.0.0.1:{p}" for p in self.mtls_ports.values())
        self.admin_password = secrets.token_urlsafe(18)
        self.ca: CertificateAuthority | None = None
        self._broker_identity: Identity | None = None

    def start(self, timeout: float = 90.0) -> Self:
        self.ca = CertificateAuthority(self.workdir / "tls")
        self._broker_identity = self.ca.issue("broker", hosts=("127.0.0.1", "localhost"))
        return super().start(timeout)

    @property
    def ca_location(self) -> str:
        """The CA certificate (PEM) that clients trust: ``ssl.ca.location`` / ``KAFKA_SSL_CA_LOCATION``."""
        assert self.ca is not None, "the cluster is not started"
        return str(self.ca.certificate)

    def issue_client_certificate(self, name: str, key_password: str | None = None) -> Identity:
        """A client certificate for principal ``User:<name>`` on the mutual-TLS listener."""
        assert self.ca is not None, "the cluster is not started"
        return self.ca.issue(name, key_password=key_password)

    # -- client settings -----------------------------------------------------------------------

    def client_config(self) -> dict[str, Any]:
        """The super user ``admin`` over SCRAM/TLS: what the fixtures' admin helpers use."""
        return {**self.scram_config(ADMIN_USER, self.admin_password), "logger": CLIENT_LOG}

    def scram_config(self, username: str, password: str) -> dict[str, str]:
        """librdkafka settings for ``username`` over SASL_SSL with SCRAM-SHA-512."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": SCRAM_MECHANISM,
            "sasl.username": username,
            "sasl.password": password,
            "ssl.ca.location": self.ca_location,
        }

    def mtls_config(self, identity: Identity, key_password: str | None = None) -> dict[str, str]:
        """librdkafka settings for ``identity`` over mutual TLS."""
        config = {
            "bootstrap.servers": self.mtls_bootstrap_servers,
            "security.protocol": "SSL",
            "ssl.ca.location": self.ca_location,
            "ssl.certificate.location": str(identity.certificate),
            "ssl.key.location": str(identity.key),
        }
        if key_password is not None:
            config["ssl.key.password"] = key_password
        return config

    def scram_env(self, username: str, password: str) -> dict[str, str]:
        """The runner's and ``neotool-dlq``'s environment (``KAFKA_*``) for ``username`` over SCRAM/TLS."""
        return {
            "KAFKA_BROKERS": self.bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
            "KAFKA_SASL_USERNAME": username,
            "KAFKA_SASL_PASSWORD": password,
            "KAFKA_SSL_CA_LOCATION": self.ca_location,
        }

    def mtls_env(self, identity: Identity) -> dict[str, str]:
        """The runner's and ``neotool-dlq``'s environment (``KAFKA_*``) for ``identity`` over mutual TLS."""
        return {
            "KAFKA_BROKERS": self.mtls_bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CA_LOCATION": self.ca_location,
            "KAFKA_SSL_CERTIFICATE_LOCATION": str(identity.certificate),
            "KAFKA_SSL_KEY_LOCATION": str(identity.key),
        }

    # -- the brokers' side ---------------------------------------------------------------------

    def _format_arguments(self, node: BrokerNode) -> list[str]:
        return ["--add-scram", f"{SCRAM_MECHANISM}=[name={ADMIN_USER},password={self.admin_password}]"]

    def _server_properties(self, node: BrokerNode) -> dict[str, str]:
        assert self.ca is not None
        assert self._broker_identity is not None
        properties = super()._server_properties(node)
        mtls = self.mtls_ports[node.node_id]
        properties.update(
            {
                "listeners": (
                    f"SECURE://127.0.0.1:{node.port},MTLS://127.0.0.1:{mtls},"
                    f"CONTROLLER://127.0.0.1:{node.controller_port}"
                ),
                "advertised.listeners": f"SECURE://127.0.0.1:{node.port},MTLS://127.0.0.1:{mtls}",
                "listener.security.protocol.map": "SECURE:SASL_SSL,MTLS:SSL,CONTROLLER:SSL",
                "inter.broker.listener.name": "MTLS",
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(self._broker_identity.bundle),
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(self.ca.certificate),
                "listener.name.mtls.ssl.client.auth": "required",
                "listener.name.controller.ssl.client.auth": "required",
                "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
                "sasl.enabled.mechanisms": SCRAM_MECHANISM,
                "listener.name.secure.sasl.enabled.mechanisms": SCRAM_MECHANISM,
                f"listener.name.secure.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": _SCRAM_LOGIN,
                "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                "allow.everyone.if.no.acl.found": "false",
                "super.users": f"User:{ADMIN_USER};{BROKER_PRINCIPAL}",
            }
        )
        properties.update(self.broker_config)
        return properties
