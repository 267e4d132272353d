"""Where each topic a runner reads sits among the tiers: a source topic (tier 0) or its tier 1, 2, ..."""

from __future__ import annotations

from neotool_common.config.settings import RunnerSettings

__all__ = ["Place", "TierMap"]

Place = tuple[str, int]  # (source topic, tier): tier 0 is the source topic itself


class TierMap:
    def __init__(self, settings: RunnerSettings) -> None:
        policy = settings.retry_topics
        self.delays_ms = policy.delays_ms
        self._topics = {source: (source, *policy.topics_for(source, settings.group_id)) for source in settings.topics}
        self._places: dict[str, Place] = {
            topic: (source, tier) for source, topics in self._topics.items() for tier, topic in enumerate(topics)
        }
        self.tier_topics = frozenset(topic for topic, (_, tier) in self._places.items() if tier > 0)

    def place(self, topic: str) -> Place:
        return self._places.get(topic, (topic, 0))

    @property
    def last(self) -> int:
        return len(self.delays_ms)

    def topic(self, source: str, tier: int) -> str:
        return self._topics[source][tier]

    def delay_ms(self, tier: int) -> int:
        return self.delays_ms[tier - 1]

    def later_delays_ms(self, tier: int) -> int:
        """The delays of the tiers after ``tier``, summed."""
        return sum(self.delays_ms[tier:])
