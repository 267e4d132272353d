"""The start of a run: the clients made from the settings, every bad ``KAFKA_CONFIG_*`` named at once, and the
effective settings in one line.

librdkafka refuses a client at its first bad setting; :func:`make_client` then takes each bad one out in turn
to find the others, so the user fixes them all in one go: one :class:`ConfigurationError` per setting, each
naming its variable and the problem in plain words, raised together as :class:`ConfigurationErrors`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from typing import Any, Final

from confluent_kafka import KafkaException

from neotool_common.config.connection import passthrough_variable, redact_config
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer.context import RunContext
from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.errors import ConfigurationError, ConfigurationErrors

__all__ = ["effective_settings", "make_client", "warn_about_missing_dlq_topics"]

_PROPERTY = re.compile(r'property:? "([^"]+)"')
_UNKNOWN = "No such configuration property"
# More bad settings than this in one variable set is not a typo worth finding one by one.
_MAX_BAD: Final = 20


def make_client(factory: Callable[[dict[str, Any]], Any], config: dict[str, Any], settings: RunnerSettings) -> Any:
    """``factory(config)``; a refused configuration raises one error per bad ``KAFKA_CONFIG_*`` setting."""
    try:
        return factory(config)
    except (KafkaException, ValueError, TypeError) as exc:
        first = exc
    errors: list[ConfigurationError] = []
    remaining = dict(config)
    failure: BaseException | None = first
    while failure is not None and len(errors) < _MAX_BAD:
        name, error = _explain(failure, settings)
        errors.append(error)
        if name is None or name not in remaining:
            break
        del remaining[name]
        failure = _try(factory, remaining)
    raise ConfigurationErrors(errors) from None


def _try(factory: Callable[[dict[str, Any]], Any], config: dict[str, Any]) -> BaseException | None:
    """Whether librdkafka accepts ``config``: a client made to find out is quiet and closed at once."""
    try:
        client = factory({**config, "log_level": 0, "error_cb": _ignore})
    except (KafkaException, ValueError, TypeError) as exc:
        return exc
    close = getattr(client, "close", None)
    if callable(close):
        with contextlib.suppress(KafkaException, RuntimeError):
            close()
    return None


def _ignore(_: Any) -> None:
    return None


def _explain(exc: BaseException, settings: RunnerSettings) -> tuple[str | None, ConfigurationError]:
    text = _client_error_text(exc)
    match = _PROPERTY.search(text)
    if match is None:
        return None, ConfigurationError("KAFKA_CONFIG_*", text)
    name = match.group(1)
    if name not in settings.connection.extra:
        return name, ConfigurationError("KAFKA_CONFIG_*", text)
    variable = passthrough_variable(name)
    if text.startswith(_UNKNOWN):
        problem = f"librdkafka has no setting {name!r} (the variable names it with dots for underscores)"
    else:
        problem = f"{settings.connection.extra[name]!r} is not a valid value of librdkafka setting {name!r}: {text}"
    return name, ConfigurationError(variable, problem)


def _client_error_text(exc: BaseException) -> str:
    first = exc.args[0] if exc.args else exc
    text = first.str() if hasattr(first, "str") else str(first)
    return str(text).strip().split("\n", maxsplit=1)[0]


def effective_settings(settings: RunnerSettings) -> dict[str, Any]:
    """The settings a run goes by, for its start line (secrets masked)."""
    connection = settings.connection
    throughput = settings.throughput
    consumer = settings.consumer_config()
    metrics = f"{settings.metrics_host}:{settings.metrics_port}" if settings.metrics_port else "off"
    retry = settings.retry
    return {
        "brokers": connection.brokers,
        "security_protocol": connection.security_protocol,
        "topics": list(settings.topics),
        "dlq_topics": [dlq_topic_for(topic) for topic in settings.topics],
        "retry_topics": list(settings.subscription[len(settings.topics) :]),  # the group's delay tiers, if any
        "group_protocol": connection.group_protocol,
        "assignor": consumer.get("group.remote.assignor", consumer.get("partition.assignment.strategy", "broker's")),
        "ordering": str(throughput.ordering),
        "max_concurrency": throughput.max_concurrency,
        "batch_size": throughput.batch_size,
        "retry_max_attempts": settings.retry.max_attempts,
        "retry_backoff_ms": [round(retry.initial_backoff_s * 1000), round(retry.max_backoff_s * 1000)],
        "commit_every_records": settings.commit.every_records,
        "commit_interval_ms": round(settings.commit.interval_s * 1000),
        "shutdown_grace_ms": round(settings.shutdown_grace_s * 1000),
        "metrics": metrics,
        "kafka_config": redact_config(connection.extra),
    }


def warn_about_missing_dlq_topics(ctx: RunContext, consumer: Any) -> Any:
    """One warning per source topic whose ``.dlq`` does not exist (its records would wait, holding commits).

    Returns the topics' metadata (None when the cluster did not answer), for the check of the source topics.
    """
    try:
        known = consumer.list_topics(timeout=10).topics
    except KafkaException as exc:
        ctx.log.warning("cannot list topics to check the DLQ topics", error=str(exc))
        return None
    ctx.health.set_connected(True)
    for topic in ctx.settings.topics:
        if dlq_topic_for(topic) not in known:
            ctx.log.warning(
                "dead-letter topic does not exist: records that need it will wait, holding back commits",
                dlq_topic=dlq_topic_for(topic),
            )
    return known
