"""Reading the environment: every bad variable is collected and reported at once, each naming itself.

:class:`EnvReader` reads text, topic lists and bounded numbers; the policy readers below turn variables (and a
consumer class's declared defaults) into the runner's retry, throughput and retry-tier policies.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TypeVar

from neotool_common.errors import ConfigurationError, ConfigurationErrors
from neotool_common.policies.retry import RetryPolicy
from neotool_common.policies.retry_topics import RetryTopicPolicy, parse_delays
from neotool_common.policies.throughput import Ordering, ThroughputPolicy

__all__ = ["EnvReader", "retry_policy", "retry_topic_policy", "throughput_policy"]

T = TypeVar("T", int, float)
V = TypeVar("V")


def retry_policy(reader: EnvReader) -> RetryPolicy:
    try:
        return RetryPolicy(
            max_attempts=reader.number("RETRY_MAX_ATTEMPTS", 5, int, minimum=1),
            initial_backoff_s=reader.number("RETRY_BACKOFF_INITIAL_MS", 200, int, minimum=0) / 1000,
            max_backoff_s=reader.number("RETRY_BACKOFF_MAX_MS", 30_000, int, minimum=0) / 1000,
        )
    except ValueError:
        raise ConfigurationError("RETRY_BACKOFF_INITIAL_MS", "must not exceed RETRY_BACKOFF_MAX_MS") from None


def throughput_policy(reader: EnvReader, defaults_from: type | None) -> ThroughputPolicy:
    """The throughput mode: the consumer class's attributes, overridden by the environment."""
    default = ThroughputPolicy()
    declared = {
        "max_concurrency": getattr(defaults_from, "max_concurrency", default.max_concurrency),
        "ordering": getattr(defaults_from, "ordering", default.ordering),
        "batch_size": getattr(defaults_from, "batch_size", default.batch_size),
        "batch_max_wait_ms": getattr(defaults_from, "batch_max_wait_ms", round(default.batch_max_wait_s * 1000)),
        "max_in_flight": getattr(defaults_from, "max_in_flight", default.max_in_flight),
    }
    ordering = (reader.text("ORDERING") or str(declared["ordering"])).lower()
    if ordering not in tuple(Ordering):
        raise ConfigurationError("ORDERING", f"must be one of {', '.join(Ordering)}, got {ordering!r}")
    return ThroughputPolicy(
        max_concurrency=reader.number("MAX_CONCURRENCY", int(declared["max_concurrency"]), int, minimum=1),
        ordering=Ordering(ordering),
        batch_size=reader.number("BATCH_SIZE", int(declared["batch_size"]), int, minimum=1),
        batch_max_wait_s=reader.number("BATCH_MAX_WAIT_MS", int(declared["batch_max_wait_ms"]), int, minimum=0) / 1000,
        max_in_flight=reader.number("MAX_IN_FLIGHT", int(declared["max_in_flight"]), int, minimum=0),
    )


def retry_topic_policy(reader: EnvReader, defaults_from: type | None) -> RetryTopicPolicy:
    """The delay tiers: the consumer class's ``retry_topic_*`` attributes, overridden by the environment."""
    raw, flag = reader.text("RETRY_TOPIC_DELAYS_MS"), reader.text("RETRY_TOPIC_KEY_ORDER")
    if flag is not None and flag.lower() not in ("true", "false"):
        raise ConfigurationError("RETRY_TOPIC_KEY_ORDER", f"must be true or false, got {flag!r}")
    try:
        delays = parse_delays(raw) if raw is not None else tuple(getattr(defaults_from, "retry_topic_delays_ms", ()))
        key_order = flag.lower() == "true" if flag else bool(getattr(defaults_from, "retry_topic_key_order", False))
        return RetryTopicPolicy(delays, key_order)
    except ValueError as exc:
        raise ConfigurationError("RETRY_TOPIC_DELAYS_MS", str(exc)) from None


class EnvReader:
    """Reads variables; a bad one is remembered (its default used) so that all of them are reported at once."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.errors: list[ConfigurationError] = []

    def collect(self, read: Callable[[], V], fallback: V) -> V:
        try:
            return read()
        except ConfigurationErrors as errors:
            self.errors.extend(errors.errors)
        except ConfigurationError as error:
            self.errors.append(error)
        return fallback

    def raise_errors(self) -> None:
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ConfigurationErrors(self.errors)

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def topics(self, name: str) -> tuple[str, ...]:
        raw = self.text(name)
        return tuple(t.strip() for t in raw.split(",") if t.strip()) if raw else ()

    def number(
        self, name: str, default: T, kind: Callable[[str], T], *, minimum: T | None = None, maximum: T | None = None
    ) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value: T | None = kind(raw)
        except ValueError:
            value = None
        problem = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)):  # NaN passes any bound check
            problem = f"{raw!r} is not a {'whole number' if kind is int else 'finite number'}"
        elif minimum is not None and value < minimum:
            problem = f"must be at least {minimum}, got {raw}"
        elif maximum is not None and value > maximum:
            problem = f"must be at most {maximum}, got {raw}"
        if problem is not None or value is None:
            self.errors.append(ConfigurationError(name, problem or "invalid"))
            return default
        return value
