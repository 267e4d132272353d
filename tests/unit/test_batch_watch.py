"""The runner's batch watch over fakes: who announces, when the hook runs again, what is logged; the CLI's usage."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from neotool_common.batches import BatchManifest, BatchSummary, PartitionSpan
from neotool_common.batches.settings import BatchSettings
from neotool_common.cli import batch as batch_cli
from neotool_common.config.settings import RunnerSettings
from neotool_common.consumer.batch_watch import BatchWatch
from neotool_common.consumer.ownership import Ownership
from neotool_common.consumer_base import KafkaConsumerRunner
from neotool_common.observability.logs import get_logger
from neotool_common.observability.metrics import BatchMetrics
from neotool_common.testing.fakes import FakeMessage, FakeProducer

TOPIC = "people.v1"
GROUP = "enrich"
BATCH = "0190f3b2-8a1e-7c3d-9f00-000000000001"


@dataclass
class FakeTail:
    messages: list[Any] = field(default_factory=list)

    def catch_up(self) -> list[Any]:
        taken, self.messages = self.messages, []
        return taken

    def close(self) -> None:
        pass


@dataclass
class FakeRetryTail:
    """A retry topic's reader: re-reads from where :meth:`seek` put it; ``on_read`` runs as it reads."""

    messages: list[Any] = field(default_factory=list)
    on_read: Callable[[], None] = lambda: None
    partitions: int = 1
    start: dict[int, int] = field(default_factory=dict)

    def seek(self, start: dict[int, int]) -> None:
        self.start = dict(start)

    def catch_up(self) -> list[Any]:
        self.on_read()
        return [m for m in self.messages if m.offset() >= self.start.get(m.partition(), 0)]

    def close(self) -> None:
        pass


@dataclass
class FakeCluster:
    committed_offsets: dict[int, int] = field(default_factory=dict)
    tails: dict[str, FakeTail | FakeRetryTail] = field(default_factory=dict)
    retry_committed: dict[str, dict[int, int]] = field(default_factory=dict)

    def partitions(self, topic: str) -> int:
        return 2

    def committed(self, group: str, topic: str, partitions: int) -> dict[int, int]:
        return dict(self.retry_committed.get(topic, self.committed_offsets))

    def topic_names(self) -> frozenset[str]:
        return frozenset(self.tails)

    def tail(self, name: str) -> FakeTail | FakeRetryTail:
        return self.tails.setdefault(name, FakeTail())

    def add(
        self, name: str, key: bytes, value: bytes | None, headers: list[tuple[str, bytes | None]] | None = None
    ) -> None:
        tail = self.tail(name)
        assert isinstance(tail, FakeTail)
        tail.messages.append(FakeMessage(name, 0, len(tail.messages), value, key, headers))


MANIFEST = BatchManifest(
    BATCH,
    TOPIC,
    "0",
    1,
    (PartitionSpan(0, ((0, 2),)), PartitionSpan(1, ((0, 1),))),
    0,
    0,
    "h/1",
    "2026-01-01T00:00:00.000Z",
    0,
)


@dataclass
class Harness:
    cluster: FakeCluster
    producer: FakeProducer
    watch: BatchWatch
    completed: list[BatchSummary]
    owned: set[tuple[str, int]]
    registry: CollectorRegistry
    ownership: Ownership


def harness(fail_hook: list[bool] | None = None, then: Callable[[], None] = lambda: None) -> Harness:
    cluster = FakeCluster()
    cluster.add(TOPIC + ".batches", MANIFEST.key.encode(), MANIFEST.encode())
    producer = FakeProducer()
    completed: list[BatchSummary] = []
    owned = {(TOPIC, 0)}
    failures = fail_hook if fail_hook is not None else []

    def hook(summary: BatchSummary) -> None:
        if failures and failures.pop(0):
            raise RuntimeError("follow-up failed")
        completed.append(summary)
        then()

    settings = RunnerSettings.from_env(
        {"KAFKA_BROKERS": "127.0.0.1:9092", "KAFKA_TOPICS": TOPIC, "KAFKA_GROUP_ID": GROUP}
    )
    registry = CollectorRegistry()
    ownership = Ownership(lambda: owned)
    watch = BatchWatch(
        settings,
        BatchSettings(announce=True, overdue_ms=1000),
        BatchMetrics(registry, GROUP),
        get_logger("test"),
        ownership,
        hook,
        clock=lambda: 0.5,
        cluster=cluster,  # type: ignore[arg-type]
        producer_factory=lambda config: producer,
    )
    return Harness(cluster, producer, watch, completed, owned, registry, ownership)


def test_a_settled_batch_is_announced_once_with_the_hook_first_and_one_info_line() -> None:
    h = harness()
    assert h.watch.refresh() == []  # nothing committed yet: open
    h.cluster.committed_offsets.update({0: 3, 1: 2})
    with capture_logs() as logs:
        assert len(h.watch.refresh()) == 1
        assert h.watch.refresh() == []
    assert [s.idempotency_key for s in h.completed] == [f"{BATCH}/{GROUP}"]
    (written,) = [p for p in h.producer.log if p.topic == TOPIC + ".batches.done"]
    assert written.key == f"{BATCH}/{GROUP}".encode()
    assert orjson.loads(written.value or b"")["records_processed"] == 5
    (line,) = [entry for entry in logs if entry["event"] == "batch complete"]
    assert (line["log_level"], line["batch_id"], line["records_processed"], line["records_rejected"]) == (
        "info",
        BATCH,
        5,
        0,
    )
    assert (
        h.registry.get_sample_value("neotool_consumer_batches", {"topic": TOPIC, "group": GROUP, "state": "complete"})
        == 1
    )


TIER = f"{TOPIC}.retry.{GROUP}.30s"


def retry_copy(partition: int, offset: int, at: int) -> FakeMessage:
    headers = [("retry.original.partition", str(partition).encode()), ("retry.original.offset", str(offset).encode())]
    return FakeMessage(TIER, 0, at, b"{}", None, headers)


def test_a_record_waiting_in_a_retry_tier_holds_the_announcement_until_the_tier_commits_past_it() -> None:
    h = harness()
    h.cluster.tails[TIER] = FakeRetryTail([retry_copy(1, 1, at=0)])
    h.cluster.retry_committed[TIER] = {}
    h.cluster.committed_offsets.update({0: 3, 1: 2})  # the source is committed past the whole batch
    assert h.watch.refresh() == []
    assert h.completed == []
    h.cluster.retry_committed[TIER] = {0: 1}  # processed from the tier
    (summary,) = h.watch.refresh()
    assert (summary.state.value, summary.processed, summary.in_retry) == ("complete", 5, 0)


def test_the_dlq_is_read_after_the_tiers_so_a_record_leaving_the_last_tier_is_a_reject() -> None:
    h = harness()
    dlq_headers = [
        ("dlq.original.topic", TOPIC.encode()),
        ("dlq.original.partition", b"1"),
        ("dlq.original.offset", b"1"),
        ("dlq.consumer.group", GROUP.encode()),
        ("dlq.reason", b"retries_exhausted"),
    ]
    # while the watch reads the tier, the record is dead-lettered from it and the tier committed past it
    moved = lambda: h.cluster.add(TOPIC + ".dlq", b"k", b"{}", dlq_headers)  # noqa: E731
    h.cluster.tails[TIER] = FakeRetryTail([retry_copy(1, 1, at=0)], on_read=moved)
    h.cluster.retry_committed[TIER] = {0: 1}
    h.cluster.committed_offsets.update({0: 3, 1: 2})
    (summary,) = h.watch.refresh()
    assert (summary.state.value, summary.processed, summary.rejected_by_reason) == (
        "complete_with_rejects",
        4,
        {"retries_exhausted": 1},
    )


def test_a_member_without_partition_0_does_not_announce() -> None:
    h = harness()
    h.owned.clear()
    h.cluster.committed_offsets.update({0: 3, 1: 2})
    assert h.watch.refresh() == []
    assert h.completed == []


def test_an_announcement_already_on_the_topic_is_not_repeated() -> None:
    h = harness()
    h.cluster.add(TOPIC + ".batches.done", f"{BATCH}/{GROUP}".encode(), b"{}")
    h.cluster.committed_offsets.update({0: 3, 1: 2})
    assert h.watch.refresh() == []
    assert h.completed == []


def test_a_rebalance_that_began_while_the_facts_were_read_defers_the_announcement_to_the_next_refresh() -> None:
    h = harness()
    h.cluster.committed_offsets.update({0: 3, 1: 2})
    read_committed = h.cluster.committed

    def committed_then_rebalance(group: str, topic: str, partitions: int) -> dict[int, int]:
        with h.ownership.changing():  # partition 0 moved away and came back while the facts were read
            pass
        return read_committed(group, topic, partitions)

    h.cluster.committed = committed_then_rebalance  # type: ignore[method-assign]
    assert h.watch.refresh() == []
    assert h.completed == []
    h.cluster.committed = read_committed  # type: ignore[method-assign]
    assert len(h.watch.refresh()) == 1
    assert len(h.completed) == 1


def test_a_rebalance_waits_for_the_announcement_under_way_so_the_next_owner_reads_it() -> None:
    seen_at_rebalance: list[int] = []
    entered = threading.Event()
    h: Harness

    def announcements() -> int:
        return len([p for p in h.producer.log if p.topic == TOPIC + ".batches.done"])

    def rebalance() -> None:
        with h.ownership.changing():
            seen_at_rebalance.append(announcements())
            entered.set()

    rebalancer = threading.Thread(target=rebalance)

    def hook_returns_while_a_rebalance_is_waiting() -> None:
        rebalancer.start()
        # were the rebalance not held back, it would run now and see no announcement
        assert not entered.wait(1.0)

    h = harness(then=hook_returns_while_a_rebalance_is_waiting)
    h.cluster.committed_offsets.update({0: 3, 1: 2})
    assert len(h.watch.refresh()) == 1
    rebalancer.join(5)
    assert seen_at_rebalance == [1], "the announcement was acknowledged before the partition could move on"


def test_a_hook_that_raises_announces_nothing_and_runs_again_next_time() -> None:
    h = harness(fail_hook=[True])
    h.cluster.committed_offsets.update({0: 3, 1: 2})
    assert h.watch.refresh() == []
    assert [p for p in h.producer.log if p.topic.endswith(".done")] == []
    assert len(h.watch.refresh()) == 1
    assert len(h.completed) == 1


def test_an_overdue_batch_is_counted_and_logged_once_naming_the_partition() -> None:
    h = harness()
    h.watch._clock = lambda: 5.0  # past overdue_ms
    h.cluster.committed_offsets.update({0: 3})
    with capture_logs() as logs:
        h.watch.refresh()
        h.watch.refresh()
    (line,) = [entry for entry in logs if entry["event"] == "batch overdue"]
    assert line["holding_back"] == [1]
    assert (
        h.registry.get_sample_value("neotool_consumer_batches", {"topic": TOPIC, "group": GROUP, "state": "overdue"})
        == 1
    )


@pytest.mark.parametrize(
    ("argv", "env", "variable"),
    [
        (["status", BATCH], {"KAFKA_BROKERS": "127.0.0.1:9092"}, "KAFKA_TOPICS"),
        (["status", BATCH, "--topic", TOPIC], {"KAFKA_BROKERS": "127.0.0.1:9092"}, "KAFKA_GROUP_ID"),
        (["list", "--topic", TOPIC, "--group", GROUP], {}, "KAFKA_BROKERS"),
        (
            ["list", "--topic", TOPIC, "--group", GROUP],
            {"KAFKA_BROKERS": "h:1", "BATCH_OVERDUE_MS": "x"},
            "BATCH_OVERDUE_MS",
        ),
    ],
)
def test_cli_configuration_errors_are_one_line_naming_the_variable_and_exit_2(
    argv: list[str],
    env: dict[str, str],
    variable: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("KAFKA_BROKERS", "KAFKA_TOPICS", "KAFKA_GROUP_ID", "BATCH_OVERDUE_MS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert batch_cli.main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert variable in line


def test_cli_usage_errors_exit_2() -> None:
    assert batch_cli.main(["status"]) == 2
    assert batch_cli.main(["frobnicate"]) == 2


class Announcing(KafkaConsumerRunner):
    topics = (TOPIC,)
    group_id = GROUP
    announce_batches = True

    def process(self, message: Any) -> None:
        pass


def test_a_runner_with_a_bad_batch_setting_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"KAFKA_BROKERS": "127.0.0.1:9092", "BATCH_OVERDUE_MS": "an hour"}
    assert Announcing.main(env) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("Announcing: configuration error: BATCH_OVERDUE_MS")


def test_the_class_declares_announcing_and_the_environment_can_turn_it_off() -> None:
    settings = RunnerSettings.from_env({"KAFKA_BROKERS": "127.0.0.1:9092"}, defaults_from=Announcing)
    assert Announcing(settings, registry=CollectorRegistry()).batch_settings.announce
    off = BatchSettings.from_env({"BATCH_ANNOUNCE": "false"}, announce=Announcing.announce_batches)
    assert not Announcing(settings, registry=CollectorRegistry(), batch_settings=off).batch_settings.announce
