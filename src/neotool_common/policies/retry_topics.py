"""Names of the retry topics a consumer group owns (docs/retry-topics.md).

A group that opts into delay tiers owns one topic per tier for each source topic it reads::

    <source>.retry.<group>.<delay>      e.g.  people.ingest.v1.retry.enrichment.30s

The topic carries the group's name so that nobody else reads it (a retry, or a replay through it, reaches the
group that failed and no other), and one delay per topic keeps each partition in due-time order: its head record
is always the next one due, so holding the partition until then never delays a record behind it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "RETRY_INFIX",
    "RetryTopicPolicy",
    "delay_label",
    "first_retry_topic",
    "group_label",
    "group_retry_topics",
    "is_retry_topic",
    "parse_delays",
    "retry_topic",
    "retry_topics",
]

RETRY_INFIX = ".retry."
_TOPIC_MAX = 249
_NOT_TOPIC_CHARS = re.compile(r"[^a-zA-Z0-9._-]")
_UNITS = ((3_600_000, "h"), (60_000, "m"), (1_000, "s"))


def delay_label(delay_ms: int) -> str:
    """The shortest exact name of a delay: ``30000`` -> ``30s``, ``3600000`` -> ``1h``, ``1500`` -> ``1500ms``."""
    if delay_ms <= 0:
        raise ValueError(f"a retry delay must be positive, got {delay_ms} ms")
    for size, unit in _UNITS:
        if delay_ms % size == 0:
            return f"{delay_ms // size}{unit}"
    return f"{delay_ms}ms"


def group_label(group_id: str) -> str:
    """A group id as it may appear in a topic name (characters Kafka refuses become ``_``)."""
    return _NOT_TOPIC_CHARS.sub("_", group_id)


def retry_topic(source: str, group_id: str, delay_ms: int) -> str:
    """The retry topic of ``group_id`` for records of ``source`` that wait ``delay_ms``."""
    name = f"{source}{RETRY_INFIX}{group_label(group_id)}.{delay_label(delay_ms)}"
    if len(name) > _TOPIC_MAX:
        raise ValueError(f"retry topic name {name!r} is longer than Kafka's {_TOPIC_MAX} characters")
    return name


def retry_topics(source: str, group_id: str, delays_ms: tuple[int, ...]) -> tuple[str, ...]:
    """One retry topic per tier, in tier order."""
    return tuple(retry_topic(source, group_id, delay) for delay in delays_ms)


def _label_ms(label: str) -> int | None:
    """``30s`` -> 30000; None when ``label`` is not a delay name :func:`delay_label` makes."""
    for unit, size in (("ms", 1), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        number = label.removesuffix(unit)
        if number != label and number.isdigit():
            return int(number) * size
    return None


def group_retry_topics(topics: Iterable[str], source: str, group_id: str) -> tuple[str, ...]:
    """Among ``topics``, the retry topics of ``group_id`` for ``source``, shortest delay (tier 1) first.

    Only ``<source>.retry.<group>.<delay>`` itself: another group whose name extends this one's is not matched.
    """
    prefix = f"{source}{RETRY_INFIX}{group_label(group_id)}."
    delays = {topic: _label_ms(topic.removeprefix(prefix)) for topic in topics if topic.startswith(prefix)}
    return tuple(topic for _, topic in sorted((delay, topic) for topic, delay in delays.items() if delay))


def first_retry_topic(topics: Iterable[str], source: str, group_id: str) -> str | None:
    """Among ``topics``, the retry topic of ``group_id`` for ``source`` with the shortest delay (its tier 1)."""
    tiers = group_retry_topics(topics, source, group_id)
    return tiers[0] if tiers else None


def parse_delays(raw: str) -> tuple[int, ...]:
    """``"30000, 300000"`` -> ``(30000, 300000)``; a ValueError saying what is wrong otherwise."""
    try:
        return tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not a comma-separated list of whole milliseconds") from None


def is_retry_topic(topic: str) -> bool:
    return RETRY_INFIX in topic


@dataclass(frozen=True)
class RetryTopicPolicy:
    """The delay tiers a group retries through once a record's in-place attempts are spent.

    ``delays_ms`` empty: no tier, no retry topic read or needed (the default). ``key_order``: while a record of
    a key waits in a tier, later records of that key follow it there instead of overtaking it.
    """

    delays_ms: tuple[int, ...] = ()
    key_order: bool = False

    def __post_init__(self) -> None:
        if any(not isinstance(delay, int) or delay <= 0 for delay in self.delays_ms):
            raise ValueError("every retry delay must be a positive number of milliseconds")
        if len(set(self.delays_ms)) != len(self.delays_ms):
            raise ValueError("each retry delay may appear once (one topic per delay)")

    @property
    def enabled(self) -> bool:
        return bool(self.delays_ms)

    def topics_for(self, source: str, group_id: str) -> tuple[str, ...]:
        return retry_topics(source, group_id, self.delays_ms)
