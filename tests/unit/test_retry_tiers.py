"""Retry tiers over fakes: tier writes and their acknowledgement, due-time holding, bounded headers, key following."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog
from prometheus_client import CollectorRegistry

from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer.context import RunContext
from neotool_common.consumer.deadletters import DeadLetters
from neotool_common.consumer.flow import PartitionFlow
from neotool_common.consumer.partition import PartitionState
from neotool_common.consumer.tiers.gate import Handle, TierGate
from neotool_common.consumer.tiers.keys import WaitingKeys
from neotool_common.consumer.tiers.topology import TierMap
from neotool_common.consumer.tiers.writes import TierWrites
from neotool_common.deadletter import retry_headers as rh
from neotool_common.deadletter.circuit import CircuitBreaker
from neotool_common.deadletter.headers import DlqReason
from neotool_common.observability.health import HealthState
from neotool_common.observability.metrics import ConsumerMetrics
from neotool_common.testing.fakes import FakeMessage, FakeProducer, UndecodableHeaderName

SOURCE = "bank.v1"
TIER_1, TIER_2 = f"{SOURCE}.retry.g.1s", f"{SOURCE}.retry.g.5s"
NOW_S = 1_714_566_000.0


@dataclass
class Clock:
    now: float = NOW_S
    mono: float = 100.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono


@dataclass
class Parts:
    ctx: RunContext
    clock: Clock
    producer: FakeProducer
    dead_letters: DeadLetters
    gate: Handle
    keys: WaitingKeys | None
    registry: CollectorRegistry
    holds: list[tuple[str, int, int, float]] = field(default_factory=list)
    handled: list[tuple[str, int]] = field(default_factory=list)

    def state(self, topic: str, partition: int = 0) -> PartitionState:
        key = (topic, partition)
        if key not in self.ctx.partitions:
            self.ctx.partitions[key] = PartitionState(topic, partition, self.ctx.metrics.topic(topic))
        return self.ctx.partitions[key]

    def exhausted(self, msg: FakeMessage, error: BaseException | None = None, attempts: int = 3) -> None:
        state = self.state(msg.topic(), msg.partition())
        failure = error or ConnectionError("directory down")
        self.dead_letters.route(state, msg, failure, DlqReason.RETRIES_EXHAUSTED, attempts, 0.0)

    def settle(self) -> None:
        """The broker answers every write out (a key's next copy to a tier goes out once the one before is in)."""
        while self.producer.queue:
            self.dead_letters.publisher.poll()

    def written(self) -> list[tuple[str, dict[str, str]]]:
        return [(topic, {k: (v or b"").decode() for k, v in h.items()}) for topic, _, h in self.producer.produced]


def parts(key_order: bool = False) -> Parts:
    env = {"KAFKA_BROKERS": "127.0.0.1:9", "KAFKA_TOPICS": SOURCE, "KAFKA_GROUP_ID": "g", "METRICS_PORT": "0"}
    settings = RunnerSettings.from_env(
        {**env, "RETRY_TOPIC_DELAYS_MS": "1000,5000", "RETRY_TOPIC_KEY_ORDER": str(key_order).lower()}
    )
    clock = Clock()
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry, "g")
    log = structlog.get_logger("test")
    ctx = RunContext(settings, clock, metrics, HealthState(300, clock=clock.monotonic),
                     CircuitBreaker(settings.circuit), log)  # fmt: skip
    producer = FakeProducer()
    dead_letters = DeadLetters(ctx, producer, PartitionFlow(_NoClient()))
    tiers = TierMap(settings)
    keys = WaitingKeys() if key_order else None
    writes = TierWrites(ctx, dead_letters, tiers, keys)
    dead_letters.tiers = writes
    made: Parts

    def hold(state: PartitionState, offset: int, wait_s: float) -> None:
        made.holds.append((state.topic, state.partition, offset, wait_s))

    def handle(state: PartitionState, msg: Any, received: float) -> None:
        made.handled.append((msg.topic(), msg.offset()))
        state.offsets.done(msg.offset())

    gate = TierGate(ctx, tiers, hold, writes, keys, handle).handler()
    made = Parts(ctx, clock, producer, dead_letters, gate, keys, registry)
    return made


class _NoClient:
    def pause(self, partitions: list[Any]) -> None: ...
    def resume(self, partitions: list[Any]) -> None: ...


def message(topic: str, offset: int, key: bytes | None = b"k", headers: list[Any] | None = None) -> FakeMessage:
    return FakeMessage(topic, 0, offset, b'{"n":1}', key, headers or [("traceparent", b"00-ab-cd-01")])


def retry_copy(p: Parts, index: int = -1) -> FakeMessage:
    """What the runner would read back from the retry topic the last write went to."""
    produced = p.producer.log[index]
    return FakeMessage(produced.topic, 0, 40 + len(p.producer.log), produced.value, produced.key, produced.headers)


def test_a_record_whose_retries_are_spent_goes_to_the_first_tier_and_is_committable_only_once_acknowledged() -> None:
    p = parts()
    p.exhausted(message(SOURCE, 7))
    state = p.state(SOURCE)
    ((topic, headers),) = p.written()
    assert topic == TIER_1
    assert headers[rh.RETRY_DUE_AT] == str(int(NOW_S * 1000) + 1000)
    assert (headers[rh.RETRY_TIER], headers[rh.RETRY_ORIGINAL_OFFSET], headers[rh.RETRY_ATTEMPTS]) == ("1", "7", "3")
    assert headers["traceparent"] == "00-ab-cd-01"  # the record's own headers travel with it
    assert state.offsets.committable() == 7  # pending until the broker has the copy
    p.dead_letters.publisher.poll()
    assert state.offsets.committable() == 8
    assert p.ctx.tally.dead_lettered == 0


def test_a_retry_record_not_yet_due_holds_its_partition_at_it_and_is_handled_once_due() -> None:
    p = parts()
    p.exhausted(message(SOURCE, 0))
    copy = retry_copy(p)
    p.gate(p.state(TIER_1), copy, 0.0)
    assert (p.holds, p.handled) == ([(TIER_1, 0, copy.offset(), 1.0)], [])
    p.clock.now += 0.999
    p.gate(p.state(TIER_1), copy, 0.0)
    assert p.handled == []
    p.clock.now += 0.001
    p.gate(p.state(TIER_1), copy, 0.0)
    assert p.handled == [(TIER_1, copy.offset())]


def test_after_the_last_tier_the_record_goes_to_the_sources_dlq_as_the_source_record_with_its_history() -> None:
    p = parts()
    p.exhausted(message(SOURCE, 5), attempts=3)
    p.exhausted(retry_copy(p), attempts=2)
    p.exhausted(retry_copy(p), ValueError("still down"), attempts=1)
    topics = [topic for topic, _ in p.written()]
    assert topics == [TIER_1, TIER_2, f"{SOURCE}.dlq"]
    headers = p.written()[-1][1]
    assert (headers["dlq.original.topic"], headers["dlq.original.offset"]) == (SOURCE, "5")
    assert (headers["dlq.attempts"], headers["dlq.reason"]) == ("6", "retries_exhausted")
    history = json.loads(headers[rh.RETRY_HISTORY])
    assert [(e["tier"], e["attempts"], e["type"]) for e in history] == [
        (0, 3, "builtins.ConnectionError"), (1, 2, "builtins.ConnectionError"), (2, 1, "builtins.ValueError"),
    ]  # fmt: skip
    assert rh.RETRY_DUE_AT not in headers


def test_headers_are_replaced_at_every_hop_and_the_root_cause_is_kept() -> None:
    p = parts()
    try:
        try:
            raise TimeoutError("socket timed out")
        except TimeoutError as inner:
            raise ConnectionError("directory unavailable") from inner
    except ConnectionError as outer:
        p.exhausted(message(SOURCE, 0), outer)
    first = len(p.producer.log[-1].headers or [])
    p.exhausted(retry_copy(p), RuntimeError("other"))
    names = [name for name, _ in p.producer.log[-1].headers or []]
    assert len(names) == first
    assert len(set(names)) == len(names)
    headers = p.written()[-1][1]
    assert headers[rh.RETRY_ROOT_EXCEPTION_TYPE] == "builtins.TimeoutError"
    assert headers[rh.RETRY_ROOT_EXCEPTION_MESSAGE] == "socket timed out"


def test_only_retries_exhausted_moves_a_record_on_a_poison_record_from_a_tier_is_dead_lettered_at_once() -> None:
    p = parts()
    p.exhausted(message(SOURCE, 3))
    copy = retry_copy(p)
    p.dead_letters.route(p.state(TIER_1), copy, ValueError("bad"), DlqReason.POISON, 1, 0.0)
    topic, headers = p.written()[-1]
    assert (topic, headers["dlq.reason"], headers["dlq.original.offset"]) == (f"{SOURCE}.dlq", "poison", "3")


def test_the_history_stays_within_its_bounds_however_many_hops_and_says_what_it_dropped() -> None:
    entries = [rh.history_entry(n, 1, n, "builtins.ConnectionError", "x" * 1000) for n in range(40)]
    encoded = rh.bounded_history(entries)
    kept = json.loads(encoded)
    assert len(encoded) <= rh.HISTORY_MAX_BYTES
    assert kept[0]["tier"] == 0
    assert kept[-1]["tier"] == 39
    assert kept[1]["omitted"] == 40 - (len(kept) - 1)
    again = json.loads(rh.bounded_history([*rh.parse_history(encoded), rh.history_entry(40, 1, 40, "T", "m")]))
    assert again[1]["omitted"] == 41 - (len(again) - 1)  # the count carries across hops


def test_key_order_later_records_of_a_waiting_key_follow_it_and_other_keys_flow() -> None:
    p = parts(key_order=True)
    p.exhausted(message(SOURCE, 0, b"k"))
    p.settle()
    leader_due = p.written()[0][1][rh.RETRY_DUE_AT]
    p.gate(p.state(SOURCE), message(SOURCE, 1, b"k"), 0.0)
    p.settle()
    p.gate(p.state(SOURCE), message(SOURCE, 2, b"other"), 0.0)
    p.settle()
    assert p.handled == [(SOURCE, 2)]
    follower = p.written()[1]
    assert (follower[0], follower[1][rh.RETRY_DUE_AT], follower[1][rh.RETRY_ATTEMPTS]) == (TIER_1, leader_due, "0")


def test_key_order_a_follower_read_from_an_earlier_tier_follows_its_key_into_the_later_one() -> None:
    p = parts(key_order=True)
    p.exhausted(message(SOURCE, 0, b"k"))
    p.settle()
    p.gate(p.state(SOURCE), message(SOURCE, 1, b"k"), 0.0)
    p.settle()
    leader, follower = retry_copy(p, 0), retry_copy(p, 1)
    p.clock.now += 1
    p.exhausted(leader)  # the leader fails in tier 1 and moves to tier 2
    p.settle()
    p.gate(p.state(TIER_1), follower, 0.0)
    p.settle()
    assert p.handled == []
    assert [topic for topic, _ in p.written()] == [TIER_1, TIER_1, TIER_2, TIER_2]
    p.clock.now += 5
    p.gate(p.state(TIER_2), retry_copy(p, 2), 0.0)  # the leader, processed
    p.gate(p.state(TIER_2), retry_copy(p, 3), 0.0)  # then the follower
    assert [topic for topic, _ in p.handled] == [TIER_2, TIER_2]
    assert p.keys is not None
    assert len(p.keys) == 0
    p.gate(p.state(SOURCE), message(SOURCE, 2, b"k"), 0.0)
    p.settle()
    assert p.handled[-1] == (SOURCE, 2)


def test_key_order_a_key_dead_lettered_from_the_last_tier_stops_waiting() -> None:
    p = parts(key_order=True)
    p.exhausted(message(SOURCE, 0, b"k"))
    p.exhausted(retry_copy(p))
    p.exhausted(retry_copy(p))
    assert p.keys is not None
    assert len(p.keys) == 0


@pytest.mark.parametrize("key_order", [False, True])
def test_a_record_without_a_key_never_follows(key_order: bool) -> None:
    p = parts(key_order=key_order)
    p.exhausted(message(SOURCE, 0, None))
    p.gate(p.state(SOURCE), message(SOURCE, 1, None), 0.0)
    assert p.handled == [(SOURCE, 1)]


def test_waiting_keys_expire_when_every_tier_they_could_pass_is_over() -> None:
    keys = WaitingKeys()
    keys.entered((SOURCE, 0, b"k"), 7, 1, due_ms=1000, expires_ms=5000)
    assert keys.leader((SOURCE, 0, b"k"), 8, 4999) is not None
    assert keys.leader((SOURCE, 0, b"k"), 8, 5000) is None
    assert len(keys) == 0


def test_a_record_in_a_retry_topic_with_an_undecodable_header_name_is_handed_on_to_be_dead_lettered() -> None:
    p = parts()
    p.gate(p.state(TIER_1), UndecodableHeaderName(TIER_1, 0, 3, b"{}"), 0.0)
    assert (p.holds, p.handled) == ([], [(TIER_1, 3)])


def test_key_order_a_replay_for_another_group_whose_key_waits_is_handed_on_to_be_skipped_not_followed() -> None:
    p = parts(key_order=True)
    p.exhausted(message(SOURCE, 0, b"k"))
    replay = [("dlq.replay.count", b"1"), ("dlq.replay.group", b"audit")]
    p.gate(p.state(SOURCE), message(SOURCE, 1, b"k", replay), 0.0)
    assert p.handled == [(SOURCE, 1)]  # the handler skips it (replay scope); no hop into a tier
    assert [topic for topic, _ in p.written()] == [TIER_1]
    own = [("dlq.replay.count", b"1"), ("dlq.replay.group", b"g")]
    p.gate(p.state(SOURCE), message(SOURCE, 2, b"k", own), 0.0)  # a replay for this group still follows its key
    p.settle()  # written once the key's earlier copy is acknowledged
    assert [topic for topic, _ in p.written()] == [TIER_1, TIER_1]


def test_a_retry_record_replayed_for_another_group_is_handed_on_to_be_skipped_not_held() -> None:
    p = parts()
    due = str(int(NOW_S * 1000) + 60_000).encode()
    headers = [(rh.RETRY_DUE_AT, due), ("dlq.replay.group", b"audit")]
    p.gate(p.state(TIER_1), message(TIER_1, 4, b"k", headers), 0.0)
    assert (p.holds, p.handled) == ([], [(TIER_1, 4)])


def _copy(p: Parts, index: int, offset: int) -> FakeMessage:
    """The ``index``-th copy ``p`` wrote, as read back from its retry topic at ``offset``."""
    produced = p.producer.log[index]
    return FakeMessage(produced.topic, 0, offset, produced.value, produced.key, produced.headers)


def test_key_order_a_member_reading_only_the_tiers_keeps_a_key_waiting_while_any_record_it_moved_on_is_in_them() -> (
    None
):
    # Found by the nemesis (seed 130, classic-eager, tiers-key-order): member a owned the source partition and
    # member b the tier partitions, nothing moved. b moved the key's leader and a follower on to tier 2, processed
    # the leader there, forgot the key although the follower was still in tier 2, and processed a later record
    # from tier 1 before it. b counted the records it moved on as one, however many, and each processing as one.
    a, b = parts(key_order=True), parts(key_order=True)
    a.exhausted(message(SOURCE, 0, b"k"))  # the leader into tier 1
    a.settle()
    a.gate(a.state(SOURCE), message(SOURCE, 1, b"k"), 0.0)  # follows it
    a.settle()
    b.clock.now += 1
    b.exhausted(_copy(a, 0, offset=10))  # b: the leader fails in tier 1, on to tier 2
    b.settle()
    b.gate(b.state(TIER_1), _copy(a, 1, offset=11), 0.0)  # b: the follower follows it there
    b.settle()
    a.gate(a.state(SOURCE), message(SOURCE, 2, b"k"), 0.0)  # a still sees the key in tier 1: follows it there
    a.settle()
    b.clock.now += 5
    b.gate(b.state(TIER_2), _copy(b, 0, offset=20), 0.0)  # b: the leader, processed from tier 2
    b.settle()
    b.gate(b.state(TIER_1), _copy(a, 2, offset=12), 0.0)  # b: record 2 read from tier 1, record 1 still in tier 2
    b.settle()

    assert b.handled == [(TIER_2, 20)]
    assert [topic for topic, _ in b.written()] == [TIER_2, TIER_2, TIER_2]
    b.gate(b.state(TIER_2), _copy(b, 1, offset=21), 0.0)  # record 1
    b.settle()
    b.gate(b.state(TIER_2), _copy(b, 2, offset=22), 0.0)  # record 2
    b.settle()
    assert b.handled == [(TIER_2, 20), (TIER_2, 21), (TIER_2, 22)]
    assert b.keys is not None
    assert len(b.keys) == 0


def test_key_order_a_record_follows_its_keys_newest_waiting_record_not_the_furthest_one() -> None:
    # Found by the nemesis (seed 131, classic-cooperative, tiers-key-order), one member owning everything: the
    # leader moved on to tier 2 while a follower was still in tier 1; a later source record followed straight
    # into tier 2, and the tier-1 follower, moved on behind it there, was processed after it.
    p = parts(key_order=True)
    p.exhausted(message(SOURCE, 0, b"k"))  # the leader into tier 1
    p.settle()
    p.gate(p.state(SOURCE), message(SOURCE, 1, b"k"), 0.0)  # record 1 follows it
    p.settle()
    p.clock.now += 1
    p.exhausted(_copy(p, 0, offset=10))  # the leader fails in tier 1, on to tier 2
    p.settle()
    p.gate(p.state(SOURCE), message(SOURCE, 2, b"k"), 0.0)  # record 2, while record 1 is still in tier 1
    p.settle()
    p.gate(p.state(TIER_1), _copy(p, 1, offset=11), 0.0)  # record 1 read from tier 1: on to tier 2
    p.settle()
    p.gate(p.state(TIER_1), _copy(p, 3, offset=12), 0.0)  # record 2, if it waits in tier 1 behind record 1
    p.settle()

    order = [int(h[rh.RETRY_ORIGINAL_OFFSET]) for topic, h in p.written() if topic == TIER_2]
    assert order == [0, 1, 2]  # tier 2 holds them in offset order
    p.clock.now += 5
    for offset, index in ((20, 2), (21, 4), (22, 5)):
        p.gate(p.state(TIER_2), _copy(p, index, offset=offset), 0.0)
        p.settle()
    handled = [p.producer.log[i] for i in (2, 4, 5)]
    assert [h[rh.RETRY_ORIGINAL_OFFSET] for h in (dict(c.headers) for c in handled)] == [b"0", b"1", b"2"]
    assert p.handled == [(TIER_2, 20), (TIER_2, 21), (TIER_2, 22)]
    assert p.keys is not None
    assert len(p.keys) == 0


def test_key_order_a_follower_is_written_only_after_its_keys_earlier_copy_to_that_tier_is_acknowledged() -> None:
    # Found by the nemesis (seed 132, consumer, tiers-key-order; the dlq fault makes the tier topics refuse writes):
    # the leader's tier write failed and was sent again after its backoff; the followers' writes, sent meanwhile,
    # were stored first, so they sat ahead of the leader in the tier and were processed before it.
    p = parts(key_order=True)
    p.producer.failing = {TIER_1}
    p.exhausted(message(SOURCE, 0, b"k"))  # the leader's write ...
    p.dead_letters.publisher.poll()  # ... fails: sent again after a backoff
    p.producer.failing = set()
    p.gate(p.state(SOURCE), message(SOURCE, 1, b"k"), 0.0)  # a follower, while the leader's write is pending
    p.dead_letters.publisher.poll()
    p.clock.mono += 60
    p.dead_letters.publisher.poll()  # the leader sent again
    p.settle()  # acknowledged; then the follower

    stored = [int(dict(c.headers or ())[rh.RETRY_ORIGINAL_OFFSET] or b"-1") for c in p.producer.log[1:]]
    assert stored == [0, 1]  # after the failed first write: the leader, then its follower
    assert p.state(SOURCE).offsets.committable() == 2


def test_a_failed_tier_write_is_counted_by_source_and_tier_not_as_a_failed_dead_letter_write() -> None:
    # The DLQ's alert (NeotoolConsumerDeadLetterWritesFailing, "cannot write to <topic>.dlq") fired for a tier that
    # refused writes: the on-call engineer was sent to a DLQ that was fine.
    p = parts()
    p.producer.failing = {TIER_2, f"{SOURCE}.dlq"}
    p.exhausted(message(SOURCE, 0))  # to tier 1: written
    p.settle()
    copy = p.producer.log[0]
    p.exhausted(_copy(p, 0, offset=7))  # from tier 1 to tier 2: refused
    p.exhausted(FakeMessage(TIER_2, 0, 8, copy.value, copy.key, copy.headers))  # after the last tier, the DLQ: refused
    p.dead_letters.publisher.poll()

    def count(name: str, **labels: str) -> float | None:
        return p.registry.get_sample_value(name, {"group": "g", **labels})

    tier_failures = "neotool_consumer_retry_tier_write_failures_total"
    assert count(tier_failures, topic=SOURCE, tier="2") == 1
    assert count(tier_failures, topic=SOURCE, tier="1") is None
    dlq_failures = "neotool_consumer_dlq_write_failures_total"
    assert count(dlq_failures, topic=SOURCE) == 1, "the dead-letter write, by the topic whose DLQ refused it"
    assert (count(dlq_failures, topic=TIER_1) or 0) + (count(dlq_failures, topic=TIER_2) or 0) == 0


def test_key_order_copies_waiting_for_an_earlier_one_are_dropped_when_their_partition_is_revoked_or_lost() -> None:
    # Found by the nemesis (seed 132, consumer, tiers-key-order, a long network cut): a member's followers waited
    # behind their leader's unacknowledged write; the member lost its partitions, then, once the network was back
    # and the leader's write went through, wrote 267 copies of records its successor was handling again.
    p = parts(key_order=True)
    p.producer.failing = {TIER_1}
    p.exhausted(message(SOURCE, 0, b"k"))  # the leader's write fails: sent again after a backoff
    p.dead_letters.publisher.poll()
    p.gate(p.state(SOURCE), message(SOURCE, 1, b"k"), 0.0)  # a follower waits behind it
    p.dead_letters.forget([p.state(SOURCE)])  # the partition is lost
    p.producer.failing = set()
    p.clock.mono += 60
    p.dead_letters.publisher.poll()
    p.settle()

    stored = [int(dict(c.headers or ())[rh.RETRY_ORIGINAL_OFFSET] or b"-1") for c in p.producer.log]
    assert stored == [0, 0]  # the leader, failed then sent again (a write out is not taken back); no follower
    assert p.keys is not None
    assert list(p.keys.waiting[(SOURCE, 0, b"k")].records) == [0], "the dropped follower does not wait in a tier"
