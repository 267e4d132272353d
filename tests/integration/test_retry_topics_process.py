"""Retry tiers in a real process: a SIGKILL during a tier write, and while a record waits in a tier, loses nothing.

One run of :mod:`tests.integration.process_consumer` is killed in a state made deterministic, not timed: ``r-02``
waits in the tier (written, acknowledged, its partition held as ``retry_due``, due in ten minutes) and the tier
write of ``r-06`` was taken by the dead-letter producer and is never acknowledged (``STALL_TIER_WRITE_KEY``; the
process wrote a marker once it was taken), while the records after it were processed. A second process of the
same group, whose clock is past the due time (``CLOCK_AHEAD_MS``: a restart after the delay), finds both and
drains the source and the tier. The tests below read that one scenario.
"""

from __future__ import annotations

import signal
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.policies.retry_topics import retry_topic
from neotool_common.testing.harness import ReadRecord, committed_offsets, read_topic, wait_until
from neotool_common.testing.kafka import KafkaEndpoint, free_port

from .runner_support import envelope, produce
from .test_runner_process import GRACE_S, consumer_env, consumer_process

pytestmark = pytest.mark.kafka

DELAY_MS = 600_000  # far away: nothing but the restart's clock makes it due during the test
IDS = [f"r-{i:02}" for i in range(12)]
WAITING, STALLED = "r-02", "r-06"  # in the tier at the kill; its tier write taken, not acknowledged, at the kill
OFFSET = {record_id: offset for offset, record_id in enumerate(IDS)}


@dataclass
class Scenario:
    topic: str
    tier: str
    committed_at_kill: tuple[int, int]  # (source, tier)
    paused_at_kill: dict[tuple[str, str], float]  # (topic, reason) -> 1
    first: list[str]
    second: list[str]
    committed_at_end: tuple[int, int]
    paused_at_end: dict[tuple[str, str], float]
    tier_copies: list[ReadRecord]
    dead: list[ReadRecord]
    exit_code: int


def paused(port: int) -> dict[tuple[str, str], float]:
    """``neotool_consumer_partition_paused`` as the process exports it: (topic, reason) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (s.labels["topic"], s.labels["reason"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "neotool_consumer_partition_paused"
    }


def scraped(port: int) -> Callable[[], dict[tuple[str, str], float]]:
    def scrape() -> dict[tuple[str, str], float]:
        try:
            return paused(port)
        except OSError:  # the process has not opened its port yet
            return {}

    return scrape


@pytest.fixture(scope="module")
def scenario(kafka: KafkaEndpoint, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    tmp_path = tmp_path_factory.mktemp("tier-kill")
    suffix = uuid.uuid4().hex[:8]
    topic = kafka.create_topic(f"t.tier-kill.{suffix}", 1)
    kafka.create_topic(dlq_topic_for(topic), 1)
    group = f"tier-kill-{suffix}"
    tier = kafka.create_topic(retry_topic(topic, group, DELAY_MS), 1)
    flaky = {WAITING, STALLED}
    produce(kafka.bootstrap_servers, topic, [(i.encode(), envelope(i, {"flaky": i in flaky})) for i in IDS])
    outage = tmp_path / "outage"
    outage.touch()
    marker = tmp_path / "stalled-write"

    def committed() -> tuple[int, int]:
        bootstrap = kafka.bootstrap_servers
        return committed_offsets(bootstrap, group, topic, 1)[0], committed_offsets(bootstrap, group, tier, 1)[0]

    def env(port: int, **extra: str) -> dict[str, str]:
        return consumer_env(
            kafka, topic, group, RETRY_MAX_ATTEMPTS="1", RETRY_TOPIC_DELAYS_MS=str(DELAY_MS),
            FAIL_WHILE_FILE=str(outage), METRICS_PORT=str(port), METRICS_HOST="127.0.0.1", **extra,
        )  # fmt: skip

    port = free_port()
    stall = env(port, STALL_TIER_WRITE_KEY=STALLED, STALL_MARKER_FILE=str(marker))
    with consumer_process(tmp_path, stall, "first") as first:
        after = [i for i in IDS if OFFSET[i] > OFFSET[STALLED]]
        wait_until(lambda: first.handled()[-len(after) :] == after, what="the records after the stalled write")
        assert marker.read_text() == tier, "the stalled write was for the tier"
        wait_until(lambda: scraped(port)().get((tier, "retry_due")) == 1, what="the tier partition held")
        wait_until(lambda: committed()[0] >= OFFSET[STALLED], what="the source committed up to the stalled write")
        at_kill, paused_at_kill = committed(), paused(port)
        first.process.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL

    outage.unlink()  # the downstream is back
    port = free_port()
    ends = (len(IDS), 1)
    with consumer_process(tmp_path, env(port, CLOCK_AHEAD_MS=str(DELAY_MS + 60_000)), "second") as second:
        wait_until(lambda: committed() == ends, timeout=60, what="the source and the tier committed to their ends")
        wait_until(lambda: not any(scraped(port)().values()), what="no partition paused")
        paused_at_end = paused(port)
        second.process.send_signal(signal.SIGTERM)
        code = second.wait(timeout=GRACE_S + 30)
    tier_copies = read_topic(kafka.bootstrap_servers, tier)
    dead = read_topic(kafka.bootstrap_servers, dlq_topic_for(topic))
    return Scenario(
        topic, tier, at_kill, paused_at_kill, first.handled(), second.handled(), committed(), paused_at_end,
        tier_copies, dead, code,
    )  # fmt: skip


def test_at_the_kill_one_record_waited_in_the_tier_and_one_tier_write_was_unacknowledged(scenario: Scenario) -> None:
    assert scenario.paused_at_kill == {(scenario.tier, "retry_due"): 1.0}, "the tier partition was held"
    assert scenario.first == [i for i in IDS if i not in (WAITING, STALLED)], "the source flowed past both"
    source, tier = scenario.committed_at_kill
    assert source == OFFSET[STALLED], "nothing committed past the record whose tier write was not acknowledged"
    assert tier < 1, "nothing committed at or past the waiting record"


def test_after_the_restart_every_record_was_processed_and_only_records_in_flight_at_the_kill_twice(
    scenario: Scenario,
) -> None:
    assert set(scenario.first) | set(scenario.second) == set(IDS), "nothing lost"
    assert scenario.dead == [], "nothing dead-lettered"
    assert scenario.second.count(WAITING) == 1
    assert WAITING not in scenario.first, "the waiting record processed once, from the tier, by the restart"
    # In flight at the kill: every record at or after the source's committed offset (the stalled write's record
    # and those processed after it); the restart reads them from the source again, and only them.
    in_flight = {i for i in IDS if OFFSET[i] >= scenario.committed_at_kill[0]}
    assert set(scenario.second) - {WAITING} == in_flight
    assert len(scenario.second) == len(set(scenario.second)), "once each in the restart"


def test_the_unacknowledged_write_never_reached_the_tier_and_the_restart_drained_everything(
    scenario: Scenario,
) -> None:
    assert [copy.key for copy in scenario.tier_copies] == [WAITING.encode()], "r-06 came back from the source"
    assert scenario.committed_at_end == (len(IDS), 1), "the source and the tier committed to their end offsets"
    assert not any(scenario.paused_at_end.values()), "no partition paused"
    assert scenario.exit_code == 0
