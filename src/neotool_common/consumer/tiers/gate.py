"""Before a record is handled: a retry record not yet due holds its partition; a record whose key waits follows it.

Records of source topics go straight to the handler unless the key-order option finds their key waiting in a
tier. A record replayed for another group (:mod:`..replay_scope`) is handed to the handler, which skips it,
before anything else is decided: it never follows a key into a tier, nor holds a partition.

A record of a tier is handed to the handler once its ``retry.due_at`` has passed (counted as leaving the
tier, with how late). Before that its partition is held at it: sought back, paused (``RETRY_DUE``) and resumed
by the loop when due (:meth:`~neotool_common.consumer.retries.Retries.hold`), never slept on. Nothing at or
past the head record is committed meanwhile (the partition is *blocked*: its position is not committable). A
partition revoked or lost forgets its hold; whoever owns it next is delivered the head record again and holds
it again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from confluent_kafka import Message as KafkaMessage

from neotool_common.consumer.context import RunContext
from neotool_common.consumer.partition import PartitionState
from neotool_common.consumer.raw import headers_of
from neotool_common.consumer.replay_scope import ReplayScope
from neotool_common.consumer.tiers.keys import WaitingKeys
from neotool_common.consumer.tiers.topology import TierMap
from neotool_common.consumer.tiers.writes import TierWrites
from neotool_common.deadletter import retry_headers as rh
from neotool_common.errors import DecodeError

__all__ = ["TierGate"]

Handle = Callable[[PartitionState, KafkaMessage, float], None]
Hold = Callable[[PartitionState, int, float], None]  # hold a partition at an offset for so many seconds


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default


def _due_ms(headers: list[tuple[str, bytes | None]]) -> tuple[int, str, int, int]:
    """(due time, source topic, partition, offset) from a retry copy's headers; due 0 when it has none."""
    text = rh.header_text
    source = text(headers, rh.RETRY_ORIGINAL_TOPIC) or ""
    partition, offset = (
        _int(text(headers, rh.RETRY_ORIGINAL_PARTITION), -1),
        _int(text(headers, rh.RETRY_ORIGINAL_OFFSET), -1),
    )
    return _int(text(headers, rh.RETRY_DUE_AT), 0), source, partition, offset


def _headers(msg: KafkaMessage) -> list[tuple[str, bytes | None]]:
    """The record's headers; none when a name does not decode (the handler dead-letters such a record)."""
    try:
        return list(headers_of(msg))
    except DecodeError:
        return []


class TierGate:
    def __init__(
        self, ctx: RunContext, tiers: TierMap, hold: Hold, writes: TierWrites, keys: WaitingKeys | None,
        handle: Handle,
    ) -> None:  # fmt: skip
        self._ctx = ctx
        self._tiers = tiers
        self._tier_topics = tiers.tier_topics
        self._hold = hold
        self._writes = writes
        self._keys = keys
        self._handle = handle
        self._group = ctx.metrics.group
        self._scope = ReplayScope(ctx.settings.group_id)

    def handler(self) -> Handle:
        """The function the batches hand each record to; a source record costs one set lookup more than before."""
        tier_topics, from_tier, handle = self._tier_topics, self._from_tier, self._handle
        if self._keys is None:

            def gate(state: PartitionState, msg: KafkaMessage, received: float) -> None:
                if state.topic in tier_topics:
                    from_tier(state, msg, received)
                else:
                    handle(state, msg, received)

            return gate
        waiting, from_source = self._keys.waiting, self._from_source

        def gate_keys(state: PartitionState, msg: KafkaMessage, received: float) -> None:
            if state.topic in tier_topics:
                from_tier(state, msg, received)
            elif waiting:  # some key waits: does this one?
                from_source(state, msg, received)
            else:
                handle(state, msg, received)

        return gate_keys

    def _for_other_group(self, headers: list[tuple[str, bytes | None]]) -> bool:
        return bool(headers) and self._scope.other_group(headers) is not None

    def _from_source(self, state: PartitionState, msg: KafkaMessage, received: float) -> None:
        key, keys = msg.key(), self._keys
        waiting = None
        if key is not None and keys is not None:
            waiting = keys.leader((state.topic, state.partition, key), cast(int, msg.offset()), self._now_ms())
        if waiting is not None and not self._for_other_group(_headers(msg)):
            self._writes.follow(state, msg, received, waiting.tier, waiting.due_ms)
        else:
            self._handle(state, msg, received)

    def _now_ms(self) -> int:
        return int(self._ctx.clock.time() * 1000)

    def _from_tier(self, state: PartitionState, msg: KafkaMessage, received: float) -> None:
        try:
            headers = list(headers_of(msg))
        except DecodeError:  # not a copy the runner wrote: the handler dead-letters it (decode, $headers)
            self._handle(state, msg, received)
            return
        if self._for_other_group(headers):  # the handler skips it: not held, not followed
            self._handle(state, msg, received)
            return
        due_ms, source_topic, source_partition, source_offset = _due_ms(headers)
        now_ms = self._now_ms()
        offset = cast(int, msg.offset())
        if due_ms > now_ms:
            self._hold(state, offset, (due_ms - now_ms) / 1000)
            return
        source, tier = self._tiers.place(state.topic)
        if state.attempt_of(offset) == 1:  # its first delivery from this tier, not an in-place retry of it
            metrics = self._ctx.metrics
            metrics.retry.left.labels(topic=source, group=self._group, tier=str(tier)).inc()
            metrics.retry.lateness.child(source, self._group).observe((now_ms - due_ms) / 1000 if due_ms else 0.0)
        keys = self._keys
        key = msg.key()
        if keys is None or key is None:
            self._handle(state, msg, received)
            return
        source_key = (source_topic or source, source_partition, key)
        waiting = keys.leader(source_key, source_offset, now_ms)
        if waiting is not None and waiting.tier > tier:
            self._writes.follow(state, msg, received, waiting.tier, waiting.due_ms)
            return
        self._handle(state, msg, received)
        if not state.blocked and not state.offsets.is_pending(offset):
            keys.left(source_key, source_offset)  # processed: handled on this thread (key order: sequential runner)
