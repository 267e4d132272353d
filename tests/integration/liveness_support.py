"""What the liveness tests observe from outside the runner: the group's commits against the log end, other members.

Nothing here reads the runner's private state: progress is judged the way an operator judges it, by the group's
committed offsets against the partitions' end offsets (high watermarks), and rebalances are made by real group
members (plain ``confluent_kafka`` consumers) joining and leaving.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from neotool_common import KafkaConsumerRunner
from neotool_common.testing.harness import committed_offsets, wait_until

# The member settings of runner_support.settings_for, so that a plain member and a runner rebalance alike.
MEMBER_CONFIG = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "enable.auto.commit": False}


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Each partition's end offset (high watermark), read fresh from the broker."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"watermarks-{uuid.uuid4().hex[:8]}"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        consumer.close()


def lag(bootstrap: str, group: str, topic: str, partitions: int = 1) -> dict[int, int]:
    """The group's lag per partition as lag exporters compute it: end offset minus committed offset."""
    ends = end_offsets(bootstrap, topic, partitions)
    committed = committed_offsets(bootstrap, group, topic, partitions)
    return {p: ends[p] - max(committed[p], 0) for p in range(partitions)}


def wait_for_lag_0(bootstrap: str, group: str, topic: str, partitions: int = 1, timeout: float = 30.0) -> None:
    """Liveness: the group's committed offset reaches every partition's end offset within ``timeout``."""
    last: list[dict[int, int]] = [{}]

    def caught_up() -> bool:
        last[0] = lag(bootstrap, group, topic, partitions)
        return not any(last[0].values())

    try:
        wait_until(caught_up, timeout=timeout, interval=0.2, what="the group's committed offsets at the end offsets")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; lag per partition still {last[0]}") from None


def rebalances(runner: KafkaConsumerRunner, kind: str) -> float:
    """How many ``assign``, ``revoke`` or ``lost`` rebalance events the runner has had."""
    labels = {"group": runner.settings.group_id, "kind": kind}
    return runner.registry.get_sample_value("neotool_consumer_rebalances_total", labels) or 0.0


class GroupMember:
    """A plain consumer in the runner's group, polling on its own thread; it commits nothing."""

    def __init__(self, bootstrap: str, group: str, topics: Sequence[str], **config: Any) -> None:
        self._config = {"bootstrap.servers": bootstrap, "group.id": group, **MEMBER_CONFIG, **config}
        self._topics = list(topics)
        self.assigned: set[tuple[str, int]] = set()
        self.errors: list[KafkaError] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"member-{group}", daemon=True)

    def _run(self) -> None:
        consumer = Consumer({**self._config, "error_cb": self.errors.append})
        consumer.subscribe(self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        try:
            while not self._stop.is_set():
                consumer.poll(0.1)
        finally:
            consumer.close()  # leaves the group at once: its partitions go back to the other members

    def _on_assign(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        with self._lock:
            self.assigned |= {(tp.topic, tp.partition) for tp in partitions}

    def _on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        with self._lock:
            self.assigned -= {(tp.topic, tp.partition) for tp in partitions}

    def partitions(self) -> set[tuple[str, int]]:
        with self._lock:
            return set(self.assigned)

    def start(self) -> None:
        self._thread.start()

    def leave(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the extra group member did not close"


@contextmanager
def group_member(bootstrap: str, group: str, topics: Sequence[str], **config: Any) -> Iterator[GroupMember]:
    """A second member joins ``group`` for the ``with`` block (subscribed to ``topics``), then leaves it."""
    member = GroupMember(bootstrap, group, topics, **config)
    member.start()
    try:
        yield member
    finally:
        member.leave()


class ExitCode:
    """``runner.run_to_exit_code()`` on a thread: the exit code a process would have ended with."""

    def __init__(self, runner: KafkaConsumerRunner) -> None:
        self.runner = runner
        self.code: int | None = None
        self._thread = threading.Thread(target=self._run, name=f"exit-{runner.settings.group_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.code = self.runner.run_to_exit_code()

    def wait(self, timeout: float, what: str, events: Sequence[Mapping[str, Any]] = ()) -> int:
        """The exit code once the runner ended by itself; fail (after stopping it) if it runs past ``timeout``.

        ``events`` (from ``capture_logs``): the last ones logged are shown when it failed to end.
        """
        self._thread.join(timeout)
        if self._thread.is_alive():
            last = [(e.get("level"), e.get("event"), e.get("error")) for e in list(events)[-6:]]
            self.stop()
            raise AssertionError(f"the runner was still running {timeout}s after {what}; its last log events: {last}")
        assert self.code is not None
        return self.code

    def stop(self, timeout: float = 60.0) -> None:
        self.runner.stop()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the runner did not stop within {timeout}s of stop()"

    def __enter__(self) -> ExitCode:
        return self

    def __exit__(self, *_: object) -> None:
        if self._thread.is_alive():  # the test failed before the runner ended: do not leave it running
            self.stop()
