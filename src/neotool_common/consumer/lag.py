"""Each assigned partition's lag, how long it has been stalled, and why it is paused, as metrics.

:class:`LagMonitor` exports, per assigned partition of this member,

* ``neotool_consumer_lag_records``: end offset - committed offset, where *committed* is the highest offset the
  group coordinator acknowledged for this member (before this member committed anything: the group's committed
  offset; for a partition the group never committed, where the consumer starts reading it);
* ``neotool_consumer_partition_stalled_seconds``: how long the partition has had lag > 0 while its committed offset
  did not move (0 when caught up);
* ``neotool_consumer_partition_paused{reason}``: 1 while the partition is paused for that reason.

A partition's series are removed when it is revoked or lost (:meth:`LagMonitor.forget`), so ``sum by (topic)``
never adds a previous owner's figure to the new owner's, and the last value of a partition this member no longer
owns is never left behind.

The poll loop calls :meth:`LagMonitor.tick` once per turn; it does real work only every :data:`LAG_REFRESH_S`.

Where the end offsets come from, and why (measured on a local Kafka 4.3 broker, librdkafka 2.16, this machine):

* librdkafka's statistics (``statistics.interval.ms`` + ``stats_cb``) would cost no request, but their
  ``hi_offset``/``ls_offset``/``consumer_lag`` come from fetch responses, and a **paused partition is not
  fetched** (librdkafka's lag timer asks only for the low watermark): a partition paused for 4 s and then
  written 30 more records kept ``hi_offset`` at 5 for 9 s. That is exactly the frozen gauge this replaces.
* ``consumer.get_watermark_offsets(tp, cached=False)`` is fresh, but its ListOffsets request goes over the
  leader's connection behind the consumer's own long-poll Fetch, which the broker answers first: **454 ms** per
  call (p50, default ``fetch.wait.max.ms=500``; 53 ms with 100), per partition, on the poll thread. Ten partitions
  would block polling for 4.5 s every refresh, and a short timeout only turns that into missing values.
* An admin client of its own (:class:`ClusterOffsets`): ``list_offsets`` goes over the admin's own connections,
  one request per partition leader for all the partitions, and completes on librdkafka's background thread;
  the poll thread only submits and later reads the results (a round trip of 5-6 ms). Measured per tick, 4 / 64
  partitions: the due tick that asks 0.25 / 1.3 ms (p50), the tick that applies the answers 0.10 / 0.7 ms, a
  tick while the answer is out 5 µs, a tick that is not due 0.45 µs; every 5 s that is at most 0.04 % of the
  poll thread. Its price is one more client (a thread and a connection per broker it asks). Its end offsets
  follow ``isolation.level``:
  the last stable offset under ``read_committed`` (librdkafka's default), so open transactions are not lag.

The committed offsets need no request after the first one: the runner reports every commit the coordinator
acknowledged (:meth:`LagMonitor.committed`). That first one (the group's offset of a newly assigned partition) is
asked by a consumer of the group that never joins it, with ``Consumer.committed()`` on a thread of its own
(:mod:`.group_offsets`), not with the admin client's ``list_consumer_group_offsets``: librdkafka 2.16 can abort
the process on the error path of coordinator-targeted admin requests (confluentinc/librdkafka#4605), which a
network cut right after an assignment reached. The end offsets stay on the admin client: the reader's
``get_watermark_offsets(cached=False)`` would not wait behind a fetch (it fetches nothing), but it is one blocking
round trip per partition on the reader's thread, where ``list_offsets`` is one asynchronous request per leader
for every partition, and ListOffsets goes to partition leaders, not the coordinator.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import Future
from typing import Any, Final

from confluent_kafka import KafkaException, TopicPartition

from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer.offset_source import NO_OFFSET, ClusterOffsets, Key, OffsetSource
from neotool_common.observability.logs import get_logger
from neotool_common.observability.metrics import PAUSE_REASONS, ConsumerMetrics

__all__ = ["LAG_REFRESH_S", "LagMonitor"]

# How often lag and stalled seconds are refreshed. The stuck-partition alert needs far less; a scrape every 15 s
# sees each value about three times.
LAG_REFRESH_S: Final = 5.0
# A refresh that fails (cluster unreachable) is logged at most this often.
FAILURE_LOG_INTERVAL_S: Final = 60.0
_FROM_START: Final = frozenset({"earliest", "smallest", "beginning"})


class _Partition:
    __slots__ = ("acked", "counted", "end", "group_offset", "since")

    def __init__(self) -> None:
        self.acked = NO_OFFSET  # the highest commit the coordinator acknowledged for this member
        self.group_offset: int | None = None  # the group's committed offset when first asked (None: not known)
        self.end: int | None = None  # the last end offset learnt
        self.counted: int | None = None  # the committed offset the last refresh counted lag from
        self.since: float | None = None  # when the partition last had lag with its committed offset moving


class LagMonitor:
    """Lag, stalled seconds and pause reasons of the assigned partitions, in ``metrics``; poll thread only.

    ``consumer`` (``position()`` and cached ``get_watermark_offsets()``, both local calls) supplies where a
    partition the group never committed is read from: its start (``reads_from_start``, which the runner's
    ``auto.offset.reset=earliest`` means) or the consumer's position.
    """

    def __init__(
        self,
        metrics: ConsumerMetrics,
        source: OffsetSource,
        consumer: Any = None,
        *,
        reads_from_start: bool = True,
        interval_s: float | None = None,
    ) -> None:
        self._metrics = metrics
        self._group = metrics.group
        self._source = source
        self.consumer = consumer  # settable: the runner makes its consumer after the monitor
        self._reads_from_start = reads_from_start
        self._interval = LAG_REFRESH_S if interval_s is None else interval_s
        self._log = get_logger("neotool_common.consumer.lag", group=metrics.group)
        self._partitions: dict[Key, _Partition] = {}
        self._paused: dict[Key, frozenset[str]] = {}
        self._due = float("-inf")
        self._asked: list[Key] = []
        self._asked_at = 0.0
        self._ends: Future[dict[Key, int]] | None = None
        self._committed: Future[dict[Key, int]] | None = None
        self._logged_failure_at = float("-inf")

    @classmethod
    def for_runner(cls, settings: RunnerSettings, metrics: ConsumerMetrics, consumer: Any = None) -> LagMonitor:
        reset = settings.consumer_config().get("auto.offset.reset", "earliest")
        return cls(metrics, ClusterOffsets.for_settings(settings), consumer, reads_from_start=reset in _FROM_START)

    # -- what the runner calls ----------------------------------------------------------------------------

    def tick(self, now: float, partitions: Collection[Key]) -> None:
        """Once per poll-loop turn with the assigned partitions: applies answers that came, asks again when due."""
        if self._ends is not None:
            if not self._answered():
                if now - self._asked_at < 3 * self._interval:
                    return
                self._failed(now, "no answer")  # never expected (the requests are bounded); do not wait for ever
                self._ends = self._committed = None
            else:
                self._apply(now)
        if now >= self._due:
            self._due = now + self._interval
            self._ask(now, partitions)

    def committed(self, topic: str, partition: int, offset: int) -> None:
        """The group coordinator acknowledged a commit of ``offset`` for an assigned partition."""
        state = self._partitions.get((topic, partition))
        if state is None:
            state = self._partitions[(topic, partition)] = _Partition()
        state.acked = max(state.acked, offset)

    def forget(self, topic: str, partition: int) -> None:
        """The partition was revoked or lost: its series go (another member reports it now)."""
        key = (topic, partition)
        self._partitions.pop(key, None)
        labels = (topic, str(partition), self._group)
        self._metrics.lag.remove(*labels)
        self._metrics.partition_stalled.remove(*labels)
        for reason in self._paused.pop(key, frozenset()):
            self._metrics.partition_paused.remove(*labels, reason)

    def set_paused(self, topic: str, partition: int, reasons: frozenset[str]) -> None:
        """The set of reasons the partition is paused for is now ``reasons`` (empty: it is flowing)."""
        unknown = reasons - PAUSE_REASONS
        if unknown:
            raise ValueError(f"unknown pause reasons {sorted(unknown)}; known: {sorted(PAUSE_REASONS)}")
        key = (topic, partition)
        before = self._paused.get(key, frozenset())
        if reasons == before:
            return
        labels = (topic, str(partition), self._group)
        for reason in before - reasons:
            self._metrics.partition_paused.remove(*labels, reason)
        for reason in reasons - before:
            self._metrics.partition_paused.labels(*labels, reason).set(1)
        if reasons:
            self._paused[key] = reasons
        else:
            del self._paused[key]

    def close(self) -> None:
        """At shutdown: no more requests, and no series of partitions this member no longer consumes."""
        self._ends = self._committed = None
        for topic, partition in list(self._partitions.keys() | self._paused.keys()):
            self.forget(topic, partition)
        self._source.close()

    # -- refreshing ----------------------------------------------------------------------------------------

    def _answered(self) -> bool:
        assert self._ends is not None
        return self._ends.done() and (self._committed is None or self._committed.done())

    def _ask(self, now: float, partitions: Collection[Key]) -> None:
        assigned = partitions if isinstance(partitions, AbstractSet | Mapping) else set(partitions)
        for topic, partition in [key for key in self._partitions.keys() | self._paused.keys() if key not in assigned]:
            self.forget(topic, partition)  # a safety net: the runner forgets revoked and lost partitions itself
        if not assigned:
            return
        keys = list(assigned)
        for key in keys:
            if key not in self._partitions:
                self._partitions[key] = _Partition()
        unknown = [k for k in keys if self._partitions[k].acked < 0 and self._partitions[k].group_offset is None]
        try:
            self._ends = self._source.end_offsets(keys)
            self._committed = self._source.committed_offsets(unknown) if unknown else None
        except (KafkaException, RuntimeError, ValueError, TypeError) as exc:
            self._ends = self._committed = None
            self._failed(now, str(exc))
            self._refresh(now, keys, {}, {})  # stalled seconds keep counting from what is known
            return
        self._asked, self._asked_at = keys, now

    def _apply(self, now: float) -> None:
        ends = self._answer(self._ends, now)
        committed = self._answer(self._committed, now)
        self._ends = self._committed = None
        self._refresh(now, self._asked, ends, committed)

    def _answer(self, future: Future[dict[Key, int]] | None, now: float) -> dict[Key, int]:
        if future is None:
            return {}
        try:
            return future.result(timeout=0)
        except Exception as exc:  # noqa: BLE001 - a failed refresh is logged; the gauges count from what is known
            self._failed(now, str(exc))
            return {}

    def _refresh(self, now: float, keys: Sequence[Key], ends: Mapping[Key, int], group: Mapping[Key, int]) -> None:
        metrics, group_label = self._metrics, self._group
        for key in keys:
            state = self._partitions.get(key)
            if state is None:
                continue  # revoked while the request was out
            end = ends.get(key)
            if end is not None and end >= 0:
                state.end = end
            if state.group_offset is None and key in group:
                state.group_offset = group[key]
            committed = self._committed_offset(key, state)
            if state.end is None or committed is None:
                continue
            lag = max(0, state.end - committed)
            if lag == 0:
                state.since = None
            elif state.since is None or committed != state.counted:
                state.since = now
            state.counted = committed
            labels = (key[0], str(key[1]), group_label)
            metrics.lag.labels(*labels).set(lag)
            metrics.partition_stalled.labels(*labels).set(0.0 if state.since is None else now - state.since)

    def _committed_offset(self, key: Key, state: _Partition) -> int | None:
        if state.acked >= 0 or (state.group_offset is not None and state.group_offset >= 0):
            return max(state.acked, state.group_offset if state.group_offset is not None else NO_OFFSET)
        consumer = self.consumer
        if consumer is None:
            return None
        tp = TopicPartition(*key)
        try:  # the group never committed it: it is read from where the consumer starts
            if self._reads_from_start:
                low, _ = consumer.get_watermark_offsets(tp, cached=True)
                if low >= 0:
                    return int(low)
            (position,) = consumer.position([tp])
        except (KafkaException, RuntimeError):
            return None
        return int(position.offset) if position.offset >= 0 else None

    def _failed(self, now: float, error: str) -> None:
        if now - self._logged_failure_at >= FAILURE_LOG_INTERVAL_S:
            self._logged_failure_at = now
            self._log.warning(
                "refreshing consumer lag failed; lag and stalled seconds count from the last offsets learnt",
                error=error,
            )
