"""Source topics, or the group's retry tier topics, that do not exist: ``/readyz`` says not ready, and which
(each named as what it is), until every one of them appears.

A consumer subscribed to a topic nobody created consumes nothing and would otherwise look healthy. The check
runs at start and then, while a topic is missing, every :data:`CHECK_INTERVAL_S` (a metadata request bounded by
:data:`CHECK_TIMEOUT_S` on the poll thread, which has nothing to fetch from a missing topic anyway); the
warning is repeated at most every :data:`LOG_INTERVAL_S`.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaException

from neotool_common.consumer.context import RunContext

__all__ = ["CHECK_INTERVAL_S", "CHECK_TIMEOUT_S", "LOG_INTERVAL_S", "SourceTopics"]

CHECK_INTERVAL_S = 5.0
CHECK_TIMEOUT_S = 1.0
LOG_INTERVAL_S = 60.0


class SourceTopics:
    def __init__(self, ctx: RunContext, consumer: Any) -> None:
        self._ctx = ctx
        self._consumer = consumer
        self._checked_at = float("-inf")
        self._logged_at = float("-inf")
        self.missing: tuple[str, ...] = ()

    def check(self, now: float, known: Any = None, timeout: float = CHECK_TIMEOUT_S) -> None:
        """Look again (``known``: topic metadata already fetched) and tell the probes what is missing."""
        self._checked_at = now
        if known is None:
            try:
                known = self._consumer.list_topics(timeout=timeout).topics
            except KafkaException:
                return  # unreachable: the connection state says so already
        settings = self._ctx.settings
        missing = tuple(topic for topic in settings.subscription if topic not in known)
        if missing != self.missing:
            self._logged_at = float("-inf")
        self.missing = missing
        sources = tuple(topic for topic in missing if topic in settings.topics)
        tiers = tuple(topic for topic in missing if topic not in settings.topics)
        self._ctx.health.set_missing_topics(sources, tiers)
        if missing and now - self._logged_at >= LOG_INTERVAL_S:
            self._logged_at = now
            self._warn(sources, tiers)
        elif not missing and known is not None and self._logged_at > float("-inf"):
            self._ctx.log.info("the topics exist now", topics=list(settings.subscription))
            self._logged_at = float("-inf")

    def _warn(self, sources: tuple[str, ...], tiers: tuple[str, ...]) -> None:
        log = self._ctx.log
        if sources:
            log.warning(
                "source topics do not exist: not ready until they are created (neotool-topics --with-source)",
                missing_topics=list(sources),
            )
        if tiers:
            log.warning(
                "retry tier topics do not exist: not ready until they are created (neotool-topics)",
                missing_retry_topics=list(tiers),
            )

    def maybe_check(self, now: float) -> None:
        if self.missing and now - self._checked_at >= CHECK_INTERVAL_S:
            self.check(now)
