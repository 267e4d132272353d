"""Records replayed for another consumer group: completed at once, never validated or processed.

``neotool-dlq replay`` sends a dead-lettered record back to the topic it came from, which other groups may read
too. Unless asked to reach every group, the copy names the group it is for in ``dlq.replay.group``
(:mod:`neotool_common.deadletter.headers`). A runner of any other group commits past such a record: it counts it
in ``neotool_consumer_records_skipped_total{reason="replay_for_other_group"}``, logs it at DEBUG, and says once
per topic at INFO that it does so. A record without headers costs one truth test; one with headers, one pass over
them. A header without a value (or an empty one) names no group: the record is processed, as nothing may be lost.
"""

from __future__ import annotations

from collections.abc import Sequence

from neotool_common.deadletter.headers import DLQ_REPLAY_GROUP

__all__ = ["ReplayScope"]


class ReplayScope:
    """Which records of the runner's topics were replayed for a group other than ``group_id``."""

    __slots__ = ("_group",)

    def __init__(self, group_id: str) -> None:
        self._group = group_id.encode()

    def other_group(self, headers: Sequence[tuple[str, bytes | None]]) -> bytes | None:
        """The group a replayed copy is for, when that is not this runner's group; ``None`` to process it.

        The last ``dlq.replay.group`` header counts, as for every header read by name.
        """
        target = None
        for name, value in headers:
            if name == DLQ_REPLAY_GROUP:
                target = value
        if not target or target == self._group:
            return None
        return target
