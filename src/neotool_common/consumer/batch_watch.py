"""The runner's batch watch: notices batches that became settled for its group, and announces each once.

A background thread (never the poll loop) reads, every ``BATCH_WATCH_INTERVAL_MS``, what is new on each source
topic's ``<topic>.batches``, ``<topic>.dlq`` and ``<topic>.batches.done``, asks the group's committed offsets,
reads what still waits in the group's retry topics (:mod:`neotool_common.batches.retrying`; the DLQ and the
announcements are caught up once more after that, so a record that left the last tier is found there, and an
announcement another member just made is seen), and reconciles every batch
(:func:`neotool_common.batches.reconcile`). For a batch that is settled and not
announced yet, the member that owns partition 0 of the topic:

1. calls the runner's ``on_batch_complete(summary)`` (on this thread); if it raises, nothing is announced and it
   is called again on the next refresh, so it may run more than once: ``summary.idempotency_key``
   (``<batch_id>/<group>``) is the key to make it idempotent with;
2. publishes the announcement, keyed by that same key, to the compacted ``<topic>.batches.done`` and waits for
   the broker's acknowledgement;
3. logs one INFO line ``batch complete`` with ``batch_id``, ``records_processed`` and the counts by reason.

What is guaranteed: at most one announcement per (batch, group) survives compaction, and readers dedupe by key.
Exactly one is written, and the hook runs once, while members join, leave and rebalance: only partition 0's
owner acts, only when no rebalance began since it read the announcements topic up to date, and a rebalance waits
for an announcement under way (hook and acknowledged write) before the partition moves on
(:class:`~neotool_common.consumer.ownership.Ownership`), so the next owner reads it. Two can be written, and the
hook run twice, only when a member is evicted without knowing it (its partitions are lost, not revoked, while it
announces) or dies between the hook and the write (then nothing was written, and the hook runs again); both
announcements carry the same key and summary. At least one is written once the batch is
settled, as long as some member of the group runs. Overdue batches are counted in ``neotool_consumer_batches``
(state ``overdue``) and logged once per batch as a WARNING by every member.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

import orjson
from confluent_kafka import Producer

from neotool_common.batches.cluster import BatchCluster, TopicTail, dlq_fact_of
from neotool_common.batches.manifest import BatchManifest, announcement_topic_for, manifest_topic_for
from neotool_common.batches.reconcile import DlqFact, reconcile
from neotool_common.batches.retrying import RetryWaiting
from neotool_common.batches.settings import BatchSettings
from neotool_common.batches.summary import BatchState, BatchSummary
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer.ownership import Ownership
from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.observability.metrics import BatchMetrics

__all__ = ["BatchWatch", "TopicFacts"]

_FLUSH_S: Final = 10.0
_FAILURE_LOG_INTERVAL_S: Final = 60.0
Key = tuple[str, int]


class TopicFacts:
    """What the watch has read so far of one topic's manifests, DLQ copies and announcements."""

    def __init__(self, cluster: BatchCluster, topic: str, group: str) -> None:
        self.topic = topic
        self._cluster = cluster
        self.retry = RetryWaiting(cluster, topic, group)
        self._tails: dict[str, TopicTail | None] = {}
        self._manifests: dict[bytes, BatchManifest | None] = {}
        self.dlq: list[DlqFact] = []
        self.announced: set[str] = set()
        self.overdue_logged: set[str] = set()

    def refresh(self) -> None:
        for message in self._new(manifest_topic_for(self.topic)):
            try:
                value = message.value()
                self._manifests[message.key() or b""] = None if value is None else BatchManifest.decode(value)
            except (ValueError, KeyError, TypeError):
                continue
        self.catch_up()

    def catch_up(self) -> None:
        """What is new on the DLQ and the announcements (read last: right before deciding who announces)."""
        self.dlq += [fact for message in self._new(dlq_topic_for(self.topic)) if (fact := dlq_fact_of(message))]
        self.announced |= {
            (m.key() or b"").decode(errors="replace") for m in self._new(announcement_topic_for(self.topic))
        }

    def batches(self) -> dict[str, list[BatchManifest]]:
        found: dict[str, list[BatchManifest]] = {}
        for manifest in self._manifests.values():
            if manifest is not None:
                found.setdefault(manifest.batch_id, []).append(manifest)
        return found

    def close(self) -> None:
        for tail in self._tails.values():
            if tail is not None:
                tail.close()
        self.retry.close()

    def _new(self, name: str) -> list[Any]:
        tail = self._tails.get(name)
        if tail is None:
            tail = self._tails[name] = self._cluster.tail(name)  # a topic that appears later is found later
        return [] if tail is None else tail.catch_up()


class BatchWatch:
    """See the module docstring. ``ownership`` says which partitions this member owns (any thread)."""

    def __init__(
        self,
        settings: RunnerSettings,
        batches: BatchSettings,
        metrics: BatchMetrics,
        log: Any,
        ownership: Ownership,
        on_complete: Callable[[BatchSummary], object],
        clock: Callable[[], float] = time.time,
        cluster: BatchCluster | None = None,
        producer_factory: Callable[[dict[str, Any]], Any] = Producer,
    ) -> None:
        self._group = settings.group_id
        self._topics = tuple(settings.topics)
        self._batches = batches
        self._metrics = metrics
        self._log = log
        self._ownership = ownership
        self._on_complete = on_complete
        self._clock = clock
        self._owns_cluster = cluster is None
        self._cluster = cluster or BatchCluster(settings.connection, client_id=f"neotool-batch-watch-{self._group}")
        self._producer_config = {**settings.connection.producer_config(), "log_level": 0}
        self._producer_factory = producer_factory
        self._producer: Any = None
        self._facts: dict[str, TopicFacts] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"batch-watch-{self._group}", daemon=True)
        self._last_failure_log = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        interval_s = self._batches.watch_interval_ms / 1000
        try:
            while not self._stop.wait(interval_s):
                self._refresh_safely()
        finally:
            for facts in self._facts.values():
                facts.close()
            if self._producer is not None:
                self._producer.flush(1.0)
                self._producer = None  # destroyed here, on this thread, not whenever the watch is collected
            if self._owns_cluster:
                self._cluster.close()

    def _refresh_safely(self) -> None:
        try:
            self.refresh()
        except Exception as error:  # noqa: BLE001 - a watch that died would never announce again: log, go on
            now = time.monotonic()
            if now - self._last_failure_log >= _FAILURE_LOG_INTERVAL_S:
                self._last_failure_log = now
                self._log.warning("batch watch refresh failed", error=str(error))

    def refresh(self) -> list[BatchSummary]:
        """Reconcile every batch of every topic once; returns the summaries announced now."""
        return [summary for topic in self._topics for summary in self._refresh_topic(topic)]

    def _refresh_topic(self, topic: str) -> list[BatchSummary]:
        epoch, owned = self._ownership.snapshot()  # before the facts: a later rebalance is seen at announcing
        facts = self._facts.get(topic)
        if facts is None:
            facts = self._facts[topic] = TopicFacts(self._cluster, topic, self._group)
        facts.refresh()
        batches = facts.batches()
        partitions = self._cluster.partitions(topic) if batches else None
        if partitions is None:
            self._metrics.set_counts(topic, {})
            return []
        committed = self._cluster.committed(self._group, topic, partitions)  # then the tiers, then the DLQ
        in_retry = facts.retry.positions()
        facts.catch_up()
        now_ms, overdue_ms = int(self._clock() * 1000), self._batches.overdue_ms
        found = [
            reconcile(p, self._group, committed, facts.dlq, now_ms=now_ms, overdue_ms=overdue_ms, in_retry=in_retry)
            for p in batches.values()
        ]
        self._metrics.set_counts(topic, dict(Counter(summary.state.value for summary in found)))
        announced: list[BatchSummary] = []
        for summary in found:
            if summary.state is BatchState.OVERDUE:
                self._log_overdue(summary, facts)
            elif self._due(summary, facts, owned) and self._announce(summary, facts, epoch):
                announced.append(summary)
        return announced

    def _due(self, summary: BatchSummary, facts: TopicFacts, owned: frozenset[Key]) -> bool:
        """Settled, not announced yet, and this member owns partition 0 of the topic (the announcer)."""
        return summary.state.settled and summary.idempotency_key not in facts.announced and (summary.topic, 0) in owned

    def _announce(self, summary: BatchSummary, facts: TopicFacts, epoch: int) -> bool:
        with self._ownership.unchanged_since(epoch) as unchanged:
            # a rebalance began since the facts were read: the next refresh reads them again, as whoever owns
            # partition 0 by then
            return unchanged and self._hook_then_publish(summary, facts)

    def _hook_then_publish(self, summary: BatchSummary, facts: TopicFacts) -> bool:
        try:
            self._on_complete(summary)
        except Exception as error:  # noqa: BLE001 - the job's hook: logged, called again on the next refresh
            self._log.error("on_batch_complete failed; not announced yet", batch_id=summary.batch_id, error=str(error))
            return False
        if not self._publish(summary):
            return False
        facts.announced.add(summary.idempotency_key)
        self._metrics.announced(summary.topic)
        self._log.info(
            "batch complete",
            batch_id=summary.batch_id,
            topic=summary.topic,
            state=summary.state.value,
            records_expected=summary.expected,
            records_processed=summary.processed,
            records_rejected=summary.rejected,
            rejected_by_reason=dict(summary.rejected_by_reason),
            duplicates=summary.duplicates,
            idempotency_key=summary.idempotency_key,
        )
        return True

    def _publish(self, summary: BatchSummary) -> bool:
        if self._producer is None:
            self._producer = self._producer_factory(self._producer_config)
        outcome: list[object] = []
        value = orjson.dumps({**summary.as_json(), "announced_at_ms": int(self._clock() * 1000)})
        self._producer.produce(
            announcement_topic_for(summary.topic),
            value=value,
            key=summary.idempotency_key.encode(),
            on_delivery=lambda error, _: outcome.append(error),
        )
        self._producer.flush(_FLUSH_S)
        if outcome != [None]:
            self._log.warning("batch announcement not acknowledged; trying again later", batch_id=summary.batch_id)
            return False
        return True

    def _log_overdue(self, summary: BatchSummary, facts: TopicFacts) -> None:
        if summary.batch_id in facts.overdue_logged:
            return
        facts.overdue_logged.add(summary.batch_id)
        self._log.warning(
            "batch overdue",
            batch_id=summary.batch_id,
            topic=summary.topic,
            records_expected=summary.expected,
            records_processed=summary.processed,
            records_pending=summary.pending,
            holding_back=list(summary.holding_back),
            age_ms=summary.age_ms,
        )
