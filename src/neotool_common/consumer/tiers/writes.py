"""A record on its way to its group's next tier; and, for a record read from a tier, where its dead-letter is from.

A tier write is a dead-letter write to another topic: the record's offset is pending until the broker
acknowledges the copy (nothing is committed past it meanwhile), failed writes are sent again without limit, and
records held behind it count for backpressure. Only ``retries_exhausted`` moves a record on; after the last tier
it is dead-lettered to the *source* topic's DLQ, with the source coordinates and the whole history. With key
order, a key's copies to one tier topic are written one after the other, each once the one before is
acknowledged, so that a failed write sent again is never overtaken by a later copy of its key.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

from neotool_common.consumer.context import RunContext
from neotool_common.consumer.deadletters import DeadLetters, Origin
from neotool_common.consumer.partition import PartitionState
from neotool_common.consumer.raw import dlq_copy_headers, qualified
from neotool_common.consumer.tiers.carried import Carried
from neotool_common.consumer.tiers.keys import SourceKey, WaitingKeys
from neotool_common.consumer.tiers.topology import TierMap
from neotool_common.deadletter.headers import DlqReason
from neotool_common.deadletter.publisher import DeadLetter
from neotool_common.records.message import Message

__all__ = ["TierWrites"]

_KEY_GRACE_MS = 60_000


class TierWrites:
    def __init__(
        self,
        ctx: RunContext,
        dead_letters: DeadLetters,
        tiers: TierMap,
        keys: WaitingKeys | None,
        redact: Callable[[str], str] = str,
    ) -> None:
        self._ctx = ctx
        self._publisher = dead_letters.publisher
        self._tiers = tiers
        self._keys = keys
        self._redact = redact
        # key order: per key and tier topic, the copies not yet acknowledged, in order; only the first is out, so a
        # failed write sent again after its backoff is never overtaken by a later copy of its key
        # (key, tier topic) -> its copies not yet acknowledged, in order, each with its record's source offset
        self._chains: dict[tuple[SourceKey, str], deque[tuple[DeadLetter, int]]] = {}
        retry = ctx.settings.retry
        self._in_place_ms = int(retry.max_attempts * retry.max_backoff_s * 1000)

    def _now_ms(self) -> int:
        return int(self._ctx.clock.time() * 1000)

    def _carried(self, state: PartitionState, msg: Any, source: str, tier: int, headers: Any) -> Carried:
        offset, stamp = cast(int, msg.offset()), msg.timestamp()[1]
        if tier == 0:
            return Carried(state.topic, state.partition, offset, stamp)
        carried = Carried.read(headers, source, state.partition, offset, stamp)
        carried.topic = source  # the tier's own name says which source it retries, whatever a header claims
        return carried

    # -- the Diverter protocol of DeadLetters ---------------------------------------------------------

    def divert(
        self, state: PartitionState, msg: Any, error: BaseException, reason: str, attempts: int, received: float,
        message: Message | None,
    ) -> bool:  # fmt: skip
        """Retries exhausted before the last tier: the record goes to the next one instead of the DLQ."""
        if reason != DlqReason.RETRIES_EXHAUSTED:
            return False
        source, tier = self._tiers.place(state.topic)
        if tier >= self._tiers.last:
            return False
        headers = dlq_copy_headers(msg, error)
        carried = self._carried(state, msg, source, tier, headers)
        now_ms = self._now_ms()
        carried.failed(tier, attempts, now_ms, error, self._redact)
        due_ms = now_ms + self._tiers.delay_ms(tier + 1)
        if attempts > 1:
            state.clear_retry()
        self._send(state, msg, carried, headers, tier + 1, due_ms, received)
        if self._ctx.record_lines.allow(f"sent to retry tier {tier + 1}"):
            self._ctx.record_log(message, msg, error).warning(
                "processing failed; retrying through a retry topic",
                attempts=attempts,
                retry_topic=self._tiers.topic(source, tier + 1),
                tier=tier + 1,
                due_in_s=round((due_ms - now_ms) / 1000, 3),
                exception_type=qualified(error),
                error=self._redact(str(error)),
            )
        return True

    def origin(self, state: PartitionState, msg: Any, error: BaseException, attempts: int) -> Origin | None:
        """A record read from a tier is dead-lettered as the source record it is, history included."""
        source, tier = self._tiers.place(state.topic)
        if tier == 0:
            return None
        headers = dlq_copy_headers(msg, error)
        carried = self._carried(state, msg, source, tier, headers)
        carried.failed(tier, attempts, self._now_ms(), error, self._redact)
        key = msg.key()
        if self._keys is not None and key is not None:
            self._keys.left((carried.topic, carried.partition, key), carried.offset)
        copy = carried.headers(headers, None, None, self._ctx.settings.group_id)
        return Origin(source, carried.partition, carried.offset, carried.timestamp_ms, copy, carried.attempts)

    def forget(self, states: list[PartitionState]) -> None:
        """Partitions revoked or lost: their records' copies still waiting behind a key's earlier copy are not
        written (the records are redelivered to the next owner); a copy already out is not taken back."""
        gone = {state.key for state in states}
        for (source, _), queue in self._chains.items():
            if len(queue) > 1 and any((letter.topic, letter.partition) in gone for letter, _ in queue):
                head, kept = queue.popleft(), []
                for letter, offset in queue:
                    if (letter.topic, letter.partition) not in gone:
                        kept.append((letter, offset))
                    elif self._keys is not None:
                        self._keys.left(source, offset)  # never written: it does not wait in a tier here
                queue.clear()
                queue.extend([head, *kept])

    def write_failed(self, letter: DeadLetter) -> None:
        """A write to a tier failed (it is sent again): counted by its source topic and tier."""
        source, tier = self._tiers.place(letter.dlq_topic)
        ctx = self._ctx
        ctx.metrics.retry.write_failures.labels(topic=source, group=ctx.metrics.group, tier=str(tier)).inc()

    # -- key order ------------------------------------------------------------------------------------

    def follow(self, state: PartitionState, msg: Any, received: float, tier: int, due_ms: int) -> None:
        """Write a record whose key waits in ``tier`` behind its earlier record, unprocessed, due with it."""
        source, here = self._tiers.place(state.topic)
        headers = list(msg.headers() or ())
        carried = self._carried(state, msg, source, here, headers)
        self._send(state, msg, carried, headers, tier, due_ms, received)
        if self._ctx.debug:
            self._ctx.record_log(None, msg).debug("record follows its key into a retry topic", tier=tier)

    # -- the write ------------------------------------------------------------------------------------

    def _send(
        self, state: PartitionState, msg: Any, carried: Carried, headers: Any, tier: int, due_ms: int, received: float
    ) -> None:
        ctx = self._ctx
        offset = cast(int, msg.offset())
        entered = ctx.metrics.retry.entered.labels(topic=carried.topic, group=ctx.metrics.group, tier=str(tier))
        key = msg.key()
        destination = self._tiers.topic(carried.topic, tier)
        chain = None if self._keys is None or key is None else ((carried.topic, carried.partition, key), destination)

        def acked(letter: DeadLetter) -> None:
            state.offsets.finish(letter.offset)
            ctx.tally.since_commit += 1
            entered.inc()
            state.metrics.ack_latency.observe(time.perf_counter() - received)
            if chain is not None:
                self._next_in_chain(chain)

        state.offsets.begin(offset)
        copy = carried.headers(headers, tier, due_ms, ctx.settings.group_id)
        letter = DeadLetter(
            state.topic, state.partition, offset, key, msg.value(), msg.timestamp()[1], copy, "retry",
            carried.attempts, acked, destination=destination,
        )  # fmt: skip
        if self._keys is not None and chain is not None:
            tiers = self._tiers
            expires = due_ms + tiers.later_delays_ms(tier) + (tiers.last - tier + 1) * self._in_place_ms + _KEY_GRACE_MS
            self._keys.entered(chain[0], carried.offset, tier, due_ms, expires)
            queue = self._chains.setdefault(chain, deque())
            queue.append((letter, carried.offset))
            if len(queue) > 1:
                return  # written once the key's earlier copy to this topic is acknowledged: never stored ahead of it
        self._publisher.send(letter)

    def _next_in_chain(self, chain: tuple[SourceKey, str]) -> None:
        """A key's copy to a tier topic was acknowledged: write its next one there, if one waits."""
        queue = self._chains.get(chain)
        if not queue:
            return
        queue.popleft()
        if queue:
            self._publisher.send(queue[0][0])
        else:
            del self._chains[chain]
