"""Every metric the runner exports, in one place, each with what it counts.

All metrics live in a registry the runner is given (``CollectorRegistry()`` per runner in tests; the
process default otherwise), so several runners in one process never collide. Label children are created
once per topic or partition, outside the per-record path; per-record counts are added once per poll batch;
histograms are :class:`~neotool_common.observability.histogram.FastHistogram`: the per-record path defers its
values and :meth:`ConsumerMetrics.flush` counts them once per batch.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from neotool_common.deadletter.headers import DlqReason
from neotool_common.observability.histogram import FastHistogram

__all__ = [
    "BATCH_STATES",
    "METRIC_NAMES",
    "PAUSE_REASONS",
    "BatchMetrics",
    "ConsumerMetrics",
    "TopicMetrics",
]

_LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_LATENESS_BUCKETS: Final = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_AGE_BUCKETS: Final = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)

REBALANCE_KINDS: Final = ("assign", "revoke", "lost")
# Why a partition is paused: the reason label of neotool_consumer_partition_paused.
PAUSE_REASONS: Final = frozenset({"retry_backoff", "retry_due", "dlq_backpressure", "in_flight_limit", "replay_done"})
# A batch's state for a group: the state label of neotool_consumer_batches (neotool_common.batches.BatchState).
BATCH_STATES: Final = ("open", "complete", "complete_with_rejects", "overdue")

METRIC_NAMES: Final = frozenset(
    {
        "neotool_consumer_messages_processed_total",
        "neotool_consumer_dlq_messages_total",
        "neotool_consumer_ack_latency_seconds",
        "neotool_consumer_processing_seconds",
        "neotool_consumer_end_to_end_age_seconds",
        "neotool_consumer_retries_total",
        "neotool_consumer_records_skipped_total",
        "neotool_consumer_commits_total",
        "neotool_consumer_commit_failures_total",
        "neotool_consumer_rebalances_total",
        "neotool_consumer_dlq_write_failures_total",
        "neotool_consumer_dlq_pending",
        "neotool_consumer_circuit_open",
        "neotool_consumer_lag_records",
        "neotool_consumer_partition_paused",
        "neotool_consumer_partition_stalled_seconds",
        "neotool_consumer_assigned_partitions",
        "neotool_consumer_ready",
        "neotool_consumer_batches",
        "neotool_consumer_batch_announcements_total",
        "neotool_consumer_retry_tier_entered_total",
        "neotool_consumer_retry_tier_left_total",
        "neotool_consumer_retry_tier_write_failures_total",
        "neotool_consumer_retry_lateness_seconds",
    }
)


# Why a record was committed past without being processed: the reason label of neotool_consumer_records_skipped.
# The only one: its dlq.replay.group names another group (consumer/replay_scope.py).
_SKIP_REPLAY_FOR_OTHER_GROUP: Final = "replay_for_other_group"


class TopicMetrics:
    """The label children of one topic, resolved once when the topic is first assigned."""

    def __init__(self, metrics: ConsumerMetrics, topic: str) -> None:
        group = metrics.group
        self.processed = metrics.processed.labels(topic=topic, group=group)
        self.retries = metrics.retries.labels(topic=topic, group=group)
        self.dlq_write_failures = metrics.dlq_write_failures.labels(topic=topic, group=group)
        self.skipped_replay = metrics.records_skipped.labels(
            topic=topic, group=group, reason=_SKIP_REPLAY_FOR_OTHER_GROUP
        )
        self.ack_latency = metrics.ack_latency.child(topic, group)
        self.processing = metrics.processing.child(topic, group)
        self.end_to_end_age = metrics.end_to_end_age.child(topic, group)
        # Every reason exists from the start, so rate() sees the first dead-letter of each.
        self._dlq = {
            reason: metrics.dlq_messages.labels(topic=topic, group=group, reason=reason) for reason in DlqReason
        }

    def dead_lettered(self, reason: str) -> None:
        self._dlq[DlqReason(reason)].inc()


class _RetryMetrics:
    """The retry tiers' metrics (docs/retry-topics.md)."""

    def __init__(self, registry: CollectorRegistry, topic_group: tuple[str, str]) -> None:
        # records whose write to a retry tier the broker acknowledged, by source topic and tier (1, 2, ...)
        self.entered = Counter(
            "neotool_consumer_retry_tier_entered", "Records written to a retry tier", (*topic_group, "tier"),
            registry=registry,
        )  # fmt: skip
        # records of a retry tier handed to the handler once due (whatever the outcome), by source topic and tier
        self.left = Counter(
            "neotool_consumer_retry_tier_left", "Records released from a retry tier", (*topic_group, "tier"),
            registry=registry,
        )  # fmt: skip
        # writes to a retry tier that failed (each is sent again, without limit), by source topic and tier
        self.write_failures = Counter(
            "neotool_consumer_retry_tier_write_failures", "Retry tier writes that failed (and are re-sent)",
            (*topic_group, "tier"), registry=registry,
        )  # fmt: skip
        # how long after its due time a retry record was released to the handler, by source topic
        self.lateness = FastHistogram(
            "neotool_consumer_retry_lateness_seconds", "Retry release after due time", topic_group, _LATENESS_BUCKETS
        )


class ConsumerMetrics:
    """The runner's metrics in ``registry``, labelled by consumer ``group`` (and topic, partition, reason)."""

    def __init__(self, registry: CollectorRegistry, group: str) -> None:
        self.group = group
        topic_group = ("topic", "group")
        # records whose process() returned (each counted once per successful attempt)
        self.processed = Counter(
            "neotool_consumer_messages_processed", "Records processed successfully", topic_group, registry=registry
        )
        # records whose dead-letter write the broker acknowledged, by dlq.reason
        self.dlq_messages = Counter(
            "neotool_consumer_dlq_messages",
            "Records acknowledged in the DLQ",
            (*topic_group, "reason"),
            registry=registry,
        )
        # attempts that failed with a transient error and were scheduled again
        self.retries = Counter(
            "neotool_consumer_retries", "Processing attempts retried", topic_group, registry=registry
        )
        # records committed past without being processed, by reason: replays for another group
        self.records_skipped = Counter(
            "neotool_consumer_records_skipped",
            "Records committed past unprocessed",
            (*topic_group, "reason"),
            registry=registry,
        )
        # dead-letter writes the broker rejected or timed out (each is retried; nothing is dropped)
        self.dlq_write_failures = Counter(
            "neotool_consumer_dlq_write_failures",
            "Dead-letter writes that failed and will be retried",
            topic_group,
            registry=registry,
        )
        # offset commits acknowledged by the group coordinator, and the ones it rejected
        self.commits = Counter("neotool_consumer_commits", "Offset commits acknowledged", ("group",), registry=registry)
        self.commit_failures = Counter(
            "neotool_consumer_commit_failures", "Offset commits that failed", ("group",), registry=registry
        )
        # partition assignment changes: kind is assign, revoke or lost
        self.rebalances = Counter(
            "neotool_consumer_rebalances", "Rebalance callbacks", ("group", "kind"), registry=registry
        )
        # dead-letter writes sent but not yet acknowledged (they hold back their partition's commits)
        self.dlq_pending = Gauge(
            "neotool_consumer_dlq_pending", "DLQ writes awaiting ack", ("group",), registry=registry
        )
        # 1 when the circuit breaker stopped the consumer
        self.circuit_open = Gauge(
            "neotool_consumer_circuit_open", "1 when the DLQ circuit breaker is open", ("group",), registry=registry
        )
        # records between the group's committed offset and the partition's end, refreshed every few seconds
        # (consumer.lag.LagMonitor); a partition's series goes when it is revoked or lost
        topic_partition_group = ("topic", "partition", "group")
        self.lag = Gauge(
            "neotool_consumer_lag_records", "Consumer lag in records", topic_partition_group, registry=registry
        )
        # 1 while the partition is paused for that reason (PAUSE_REASONS); the series goes when the reason clears
        self.partition_paused = Gauge(
            "neotool_consumer_partition_paused",
            "1 while the partition is paused for this reason",
            (*topic_partition_group, "reason"),
            registry=registry,
        )
        # how long the partition has had lag without its committed offset moving (0 when caught up)
        self.partition_stalled = Gauge(
            "neotool_consumer_partition_stalled_seconds",
            "Seconds with lag and no committed progress",
            topic_partition_group,
            registry=registry,
        )
        self.assigned = Gauge(
            "neotool_consumer_assigned_partitions", "Partitions assigned", ("group",), registry=registry
        )
        # 1 while connected and consuming (the /readyz answer)
        self.ready = Gauge("neotool_consumer_ready", "1 when ready", ("group",), registry=registry)
        # time from receiving a record to its offset becoming committable
        self.ack_latency = FastHistogram(
            "neotool_consumer_ack_latency_seconds", "Receive to committable", topic_group, _LATENCY_BUCKETS
        )
        # duration of one successful or failed process() call (or process_batch() call)
        self.processing = FastHistogram(
            "neotool_consumer_processing_seconds", "Duration of process()", topic_group, _LATENCY_BUCKETS
        )
        # age of the newest committed record, from its envelope's ingested_at to the commit
        self.end_to_end_age = FastHistogram(
            "neotool_consumer_end_to_end_age_seconds", "ingested_at to commit", topic_group, _AGE_BUCKETS
        )
        self.retry = _RetryMetrics(registry, topic_group)
        for histogram in (self.ack_latency, self.processing, self.end_to_end_age, self.retry.lateness):
            registry.register(histogram)
        self.commits_child, self.commit_failures_child = self.commits.labels(group), self.commit_failures.labels(group)
        self.dlq_pending_child = self.dlq_pending.labels(group=group)
        self.circuit_open_child = self.circuit_open.labels(group=group)
        self.assigned_child = self.assigned.labels(group=group)
        self.ready_child = self.ready.labels(group=group)
        self._topics: dict[str, TopicMetrics] = {}
        for kind in REBALANCE_KINDS:
            self.rebalances.labels(group=group, kind=kind)

    def topic(self, topic: str) -> TopicMetrics:
        found = self._topics.get(topic)
        if found is None:
            found = self._topics[topic] = TopicMetrics(self, topic)
        return found

    def rebalance(self, kind: str) -> None:
        self.rebalances.labels(group=self.group, kind=kind).inc()

    def flush(self) -> None:
        """Count the values the per-record path deferred (on the poll thread, once a batch is handled)."""
        self.processing.flush()
        self.ack_latency.flush()


class BatchMetrics:
    """What the runner's batch watch (``BATCH_ANNOUNCE``) exports, in ``registry``, labelled by ``group``."""

    def __init__(self, registry: CollectorRegistry, group: str) -> None:
        self.group = group
        # batches of the topic in each state for the group, as this member last reconciled them
        self.batches = Gauge(
            "neotool_consumer_batches", "Batches by state for the group", ("topic", "group", "state"), registry=registry
        )
        # (batch, group) announcements this member published to <topic>.batches.done
        self.announcements = Counter(
            "neotool_consumer_batch_announcements",
            "Batch completions announced",
            ("topic", "group"),
            registry=registry,
        )

    def set_counts(self, topic: str, counts: dict[str, int]) -> None:
        for state in BATCH_STATES:
            self.batches.labels(topic=topic, group=self.group, state=state).set(counts.get(state, 0))

    def announced(self, topic: str) -> None:
        self.announcements.labels(topic=topic, group=self.group).inc()
