"""How to reach a Kafka cluster: brokers, TLS, SASL and any other librdkafka setting, from the environment.

=================================  ==========================================================
``KAFKA_BROKERS``                   ``host:port[,host:port…]`` (required)
``KAFKA_SECURITY_PROTOCOL``         ``PLAINTEXT`` (default), ``SSL``, ``SASL_PLAINTEXT``, ``SASL_SSL``
``KAFKA_SASL_MECHANISM``            ``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512``
``KAFKA_SASL_USERNAME``             with ``KAFKA_SASL_PASSWORD`` (a secret: never logged)
``KAFKA_SASL_PASSWORD_FILE``        a file holding the password instead (one trailing newline stripped)
``KAFKA_SSL_CA_LOCATION``           CA bundle (PEM file) that signed the brokers' certificates
``KAFKA_SSL_CERTIFICATE_LOCATION``  client certificate (PEM file) for mutual TLS
``KAFKA_SSL_KEY_LOCATION``          client key (PEM file); ``KAFKA_SSL_KEY_PASSWORD`` if encrypted (a secret)
``KAFKA_SSL_KEY_PASSWORD_FILE``     a file holding the key's password instead
``KAFKA_CONFIG_<NAME>``             any other librdkafka setting: ``KAFKA_CONFIG_FETCH_MAX_BYTES=…`` sets
                                    ``fetch.max.bytes`` (underscores become dots); each client gets only
                                    the ones that apply to it (:mod:`.clients`)
=================================  ==========================================================

``KAFKA_CONFIG_GROUP_PROTOCOL`` is ``classic`` (the default) or ``consumer`` (Kafka 4's consumer group
protocol, KIP-848). With ``consumer``, a setting that protocol moved to the broker (``session.timeout.ms``,
``heartbeat.interval.ms``, ``partition.assignment.strategy``, ``group.protocol.type``) is refused by name;
``KAFKA_CONFIG_GROUP_REMOTE_ASSIGNOR`` picks the broker's assignor and is refused with ``classic``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

from neotool_common.config.client_logs import CLIENT_LOG
from neotool_common.config.clients import (
    CONSUMER_PROTOCOL,
    GROUP_PROTOCOLS,
    MOVED_TO_BROKER,
    ClientKind,
    for_client,
)
from neotool_common.errors import ConfigurationError

__all__ = ["KafkaConnection", "Secret", "passthrough_variable", "redact_config"]

_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_PASSTHROUGH_PREFIX: Final = "KAFKA_CONFIG_"
_BROKER = re.compile(r"^[A-Za-z0-9.\-_\[\]:]+:(\d{1,5})$")
_SECRET_KEY = re.compile(r"password|secret|token|credential|jaas|\.pem$|key\.pem", re.IGNORECASE)
REDACTED: Final = "***"


class Secret:
    """A string that prints as ``***``: safe to put in a settings object that might be logged."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def passthrough_variable(name: str) -> str:
    """The ``KAFKA_CONFIG_*`` variable that sets librdkafka property ``name``."""
    return _PASSTHROUGH_PREFIX + name.upper().replace(".", "_")


def redact_config(config: Mapping[str, object]) -> dict[str, object]:
    """A copy of a librdkafka configuration with every secret-looking value replaced by ``***``."""
    return {k: (REDACTED if _SECRET_KEY.search(k) else v) for k, v in config.items()}


def _secret_from_env(env: Mapping[str, str], name: str) -> Secret | None:
    """``name``'s value, or the content of the file ``<name>_FILE`` names (a Kubernetes Secret mount) with one
    trailing newline stripped; both set is a configuration error. The value itself is never in an error."""
    file_variable = f"{name}_FILE"
    value, path = env.get(name), env.get(file_variable, "").strip()
    if value and path:
        raise ConfigurationError(name, f"set either {name} or {file_variable}, not both")
    if not path:
        return Secret(value) if value else None
    try:
        with open(path, encoding="utf-8") as file:
            content = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(file_variable, f"cannot read {path}: {type(exc).__name__}") from None
    content = content.removesuffix("\n").removesuffix("\r") if content.endswith("\n") else content
    if not content:
        raise ConfigurationError(file_variable, f"{path} is empty")
    return Secret(content)


@dataclass(frozen=True)
class KafkaConnection:
    """Everything a client needs to reach the cluster. Secrets are held as :class:`Secret`."""

    brokers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: Secret | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_brokers()
        if self.security_protocol not in _PROTOCOLS:
            raise ConfigurationError("KAFKA_SECURITY_PROTOCOL", f"must be one of {', '.join(_PROTOCOLS)}")
        if self.security_protocol.startswith("SASL_"):
            self._check_sasl()
        for setting, path in (
            ("KAFKA_SSL_CA_LOCATION", self.ssl_ca_location),
            ("KAFKA_SSL_CERTIFICATE_LOCATION", self.ssl_certificate_location),
            ("KAFKA_SSL_KEY_LOCATION", self.ssl_key_location),
        ):
            if path is not None and not os.path.isfile(path):
                raise ConfigurationError(setting, f"no such file: {path}")
        self._check_group_protocol()

    @property
    def group_protocol(self) -> str:
        """``classic`` (the default) or ``consumer`` (KIP-848), from ``KAFKA_CONFIG_GROUP_PROTOCOL``."""
        return self.extra.get("group.protocol", "classic").strip().lower()

    def _check_group_protocol(self) -> None:
        protocol = self.group_protocol
        if protocol not in GROUP_PROTOCOLS:
            raise ConfigurationError(
                passthrough_variable("group.protocol"), f"must be one of {', '.join(GROUP_PROTOCOLS)}, got {protocol!r}"
            )
        if protocol != CONSUMER_PROTOCOL:
            if "group.remote.assignor" in self.extra:
                raise ConfigurationError(
                    passthrough_variable("group.remote.assignor"),
                    "applies to KAFKA_CONFIG_GROUP_PROTOCOL=consumer only; "
                    "the classic protocol's assignor is set with KAFKA_CONFIG_PARTITION_ASSIGNMENT_STRATEGY",
                )
            return
        for name, moved_to in MOVED_TO_BROKER.items():
            if name in self.extra:
                raise ConfigurationError(
                    passthrough_variable(name),
                    f"not supported with KAFKA_CONFIG_GROUP_PROTOCOL=consumer, which moved it to {moved_to}",
                )

    def _check_brokers(self) -> None:
        if not self.brokers.strip():
            raise ConfigurationError("KAFKA_BROKERS", "is required (host:port[,host:port...])")
        for broker in self.brokers.split(","):
            match = _BROKER.match(broker.strip())
            if match is None or not 0 < int(match.group(1)) < 65536:
                raise ConfigurationError("KAFKA_BROKERS", f"{broker.strip()!r} is not host:port")

    def _check_sasl(self) -> None:
        if self.sasl_mechanism not in _MECHANISMS:
            raise ConfigurationError("KAFKA_SASL_MECHANISM", f"must be one of {', '.join(_MECHANISMS)}")
        if not self.sasl_username:
            raise ConfigurationError("KAFKA_SASL_USERNAME", f"is required with {self.security_protocol}")
        if self.sasl_password is None or not self.sasl_password.reveal():
            raise ConfigurationError("KAFKA_SASL_PASSWORD", f"is required with {self.security_protocol}")

    def __repr__(self) -> str:
        # ``extra`` holds KAFKA_CONFIG_* values as plain strings, secrets such as sasl.password among them.
        shown = {f.name: getattr(self, f.name) for f in fields(self)} | {"extra": redact_config(self.extra)}
        return f"{type(self).__name__}({', '.join(f'{name}={value!r}' for name, value in shown.items())})"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaConnection:
        env = os.environ if env is None else env

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def secret(name: str) -> Secret | None:
            return _secret_from_env(env, name)

        extra = {
            name.removeprefix(_PASSTHROUGH_PREFIX).lower().replace("_", "."): value
            for name, value in env.items()
            if name.startswith(_PASSTHROUGH_PREFIX) and len(name) > len(_PASSTHROUGH_PREFIX)
        }
        return cls(
            brokers=env.get("KAFKA_BROKERS", ""),
            security_protocol=(text("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper(),
            sasl_mechanism=(text("KAFKA_SASL_MECHANISM") or "").upper() or None,
            sasl_username=text("KAFKA_SASL_USERNAME"),
            sasl_password=secret("KAFKA_SASL_PASSWORD"),
            ssl_ca_location=text("KAFKA_SSL_CA_LOCATION"),
            ssl_certificate_location=text("KAFKA_SSL_CERTIFICATE_LOCATION"),
            ssl_key_location=text("KAFKA_SSL_KEY_LOCATION"),
            ssl_key_password=secret("KAFKA_SSL_KEY_PASSWORD"),
            extra=extra,
        )

    def client_config(self, kind: ClientKind | None = None) -> dict[str, Any]:
        """The librdkafka settings of a client of ``kind`` of this connection (secrets revealed).

        ``KAFKA_CONFIG_*`` settings of another kind of client are left out (``None``: every one is kept). The
        client's own log lines go to :data:`~.client_logs.CLIENT_LOG` (structured, repeats rate-limited).
        """
        config: dict[str, Any] = {
            "bootstrap.servers": self.brokers,
            "security.protocol": self.security_protocol,
            "logger": CLIENT_LOG,
        }
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password.reveal() if self.sasl_password else None,
            "ssl.ca.location": self.ssl_ca_location,
            "ssl.certificate.location": self.ssl_certificate_location,
            "ssl.key.location": self.ssl_key_location,
            "ssl.key.password": self.ssl_key_password.reveal() if self.ssl_key_password else None,
        }
        config.update({k: v for k, v in optional.items() if v is not None})
        config.update(self.extra if kind is None else for_client(kind, self.extra))
        return config

    def producer_config(self) -> dict[str, Any]:
        """A producer that neither loses nor duplicates on retry (platform standard §4.3).

        ``acks=all`` with idempotence, zstd compression, ``linger.ms`` 5 and unbounded-in-practice retries
        within ``delivery.timeout.ms``; anything set through ``KAFKA_CONFIG_*`` still wins.
        """
        config: dict[str, Any] = {
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "zstd",
            "linger.ms": 5,
            "retries": 2_147_483_647,
            "delivery.timeout.ms": 120_000,
        }
        config.update(self.client_config(ClientKind.PRODUCER))
        return config
