"""PartitionFlow: the one owner of pause() and resume(), against a client that keeps pauses as librdkafka does."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from neotool_common.consumer.flow import PartitionFlow, PauseReason
from neotool_common.observability.metrics import PAUSE_REASONS

KEY = ("bank.v1", 0)


class Client:
    """Like librdkafka: a pause stays on the partition until resume(), whatever assignments come and go."""

    def __init__(self) -> None:
        self.paused: set[tuple[str, int]] = set()
        self.calls: list[str] = []

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.calls.append("pause")
        self.paused.update((tp.topic, tp.partition) for tp in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.calls.append("resume")
        self.paused.difference_update((tp.topic, tp.partition) for tp in partitions)


def test_a_partition_pauses_with_its_first_reason_and_resumes_only_when_the_last_one_goes() -> None:
    client = Client()
    flow = PartitionFlow(client)
    flow.pause(KEY, PauseReason.RETRY_BACKOFF)
    flow.pause(KEY, PauseReason.DLQ_BACKPRESSURE)
    flow.pause(KEY, PauseReason.DLQ_BACKPRESSURE)
    assert client.calls == ["pause"]
    flow.resume(KEY, PauseReason.RETRY_BACKOFF)
    assert KEY in client.paused, "backpressure still holds it: the retry's end must not resume it"
    flow.resume(KEY, PauseReason.RETRY_BACKOFF)
    flow.resume(KEY, PauseReason.DLQ_BACKPRESSURE)
    assert KEY not in client.paused
    assert client.calls == ["pause", "resume"]
    assert not flow.is_paused(KEY)


def test_a_partition_paused_when_revoked_flows_again_when_assigned_back() -> None:
    client = Client()
    flow = PartitionFlow(client)
    flow.pause(KEY, PauseReason.RETRY_BACKOFF)
    client.paused.add(("bank.v1", 1))  # paused by an earlier assignment that nobody owns any more
    flow.released([TopicPartition(*KEY)])
    assert flow.reasons(KEY) == frozenset()
    flow.assigned([TopicPartition(*KEY), TopicPartition("bank.v1", 1)])
    assert client.paused == set(), "a returning partition must not keep the client's old pause"


def test_every_change_of_reasons_is_reported_once() -> None:
    changes: list[tuple[tuple[str, int], frozenset[PauseReason]]] = []
    flow = PartitionFlow(Client(), lambda key, reasons: changes.append((key, reasons)))
    flow.pause(KEY, PauseReason.IN_FLIGHT_LIMIT)
    flow.pause(KEY, PauseReason.IN_FLIGHT_LIMIT)
    flow.pause(KEY, PauseReason.RETRY_BACKOFF)
    flow.resume_all(PauseReason.IN_FLIGHT_LIMIT)
    flow.released([TopicPartition(*KEY)])
    assert changes == [
        (KEY, frozenset({PauseReason.IN_FLIGHT_LIMIT})),
        (KEY, frozenset({PauseReason.IN_FLIGHT_LIMIT, PauseReason.RETRY_BACKOFF})),
        (KEY, frozenset({PauseReason.RETRY_BACKOFF})),
        (KEY, frozenset()),
    ]


def test_the_paused_metric_knows_every_reason() -> None:
    assert {str(reason) for reason in PauseReason} == PAUSE_REASONS
