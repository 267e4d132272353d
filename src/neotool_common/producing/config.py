"""The producer settings platform standard §4.3 requires, checked before any producer is made; those safe to log.

``acks=all``, ``enable.idempotence=true``, ``compression.type`` zstd or snappy, ``linger.ms`` <= 10 and
``retries`` >= 5. :meth:`~neotool_common.config.connection.KafkaConnection.producer_config` meets them;
:func:`check_producer_config` catches an override (``KAFKA_CONFIG_*`` or code) that breaks them,
under any of the names librdkafka accepts for the setting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from neotool_common.errors import ConfigurationError

__all__ = ["check_producer_config", "loggable_settings"]

_ALIASES: Final = {
    "acks": ("acks", "request.required.acks"),
    "enable.idempotence": ("enable.idempotence",),
    "compression.type": ("compression.type", "compression.codec"),
    "linger.ms": ("linger.ms", "queue.buffering.max.ms"),
    "retries": ("retries", "message.send.max.retries"),
}
_COMPRESSIONS: Final = frozenset({"zstd", "snappy"})
_MAX_LINGER_MS: Final = 10
_MIN_RETRIES: Final = 5


def check_producer_config(config: Mapping[str, object]) -> None:
    """Raise :class:`ConfigurationError` unless ``config`` meets platform standard §4.3.

    ``acks=all``, ``enable.idempotence=true``, ``compression.type`` zstd or snappy, ``linger.ms`` <= 10 and
    ``retries`` >= 5; every alias librdkafka knows for these settings is checked too.
    """
    _require(config, "acks", lambda value: value.lower() in {"all", "-1"}, "must be all")
    _require(config, "enable.idempotence", lambda value: value.lower() == "true", "must be true")
    _require(config, "compression.type", lambda value: value.lower() in _COMPRESSIONS, "must be zstd or snappy")
    _require(config, "linger.ms", lambda value: _as_int(value) <= _MAX_LINGER_MS, f"must be <= {_MAX_LINGER_MS}")
    _require(config, "retries", lambda value: _as_int(value) >= _MIN_RETRIES, f"must be >= {_MIN_RETRIES}")


def _require(config: Mapping[str, object], setting: str, accept: Callable[[str], bool], problem: str) -> None:
    present = [name for name in _ALIASES[setting] if name in config]
    if not present:
        raise ConfigurationError(setting, f"is not set; it {problem} (platform standard §4.3)")
    for name in present:
        value = str(config[name])
        try:
            accepted = accept(value)
        except ValueError:
            accepted = False
        if not accepted:
            raise ConfigurationError(name, f"is {value!r}; it {problem} (platform standard §4.3)")


def _as_int(value: str) -> int:
    return int(value.strip())


_LOGGED_SETTINGS: Final = (
    "bootstrap.servers",
    "security.protocol",
    "sasl.mechanism",
    "acks",
    "enable.idempotence",
    "compression.type",
    "linger.ms",
    "retries",
    "delivery.timeout.ms",
)


def loggable_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings worth logging, by name: an allow-list, so no secret can slip through a new setting."""
    return {name.replace(".", "_"): config[name] for name in _LOGGED_SETTINGS if name in config}
