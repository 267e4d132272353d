"""``neotool-dlq`` against a real broker: DLQs seeded with records exactly as the runner writes them.

In-process (``main(argv)``, output captured) wherever possible; as a subprocess where signals matter.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from neotool_common.cli.dlq import PAUSE_AFTER_ACKS_ENV, main
from neotool_common.dlqtool.decisions import ReplayPolicy, default_group
from neotool_common.dlqtool.filters import RecordFilter
from neotool_common.dlqtool.records import Header
from neotool_common.testing.harness import wait_until
from neotool_common.testing.kafka import KafkaEndpoint, free_port
from tests.dlq_support import Failure, envelope, minutes_after_base
from tests.integration.runner_support import group_timing

pytestmark = pytest.mark.kafka

# Record timestamps near now: the broker deletes segments whose newest record is older than the retention.
BASE_TS = int(time.time() * 1000)


@dataclass(frozen=True)
class Seed:
    """One record put on the DLQ: its bytes, its failure, and where it goes."""

    key: bytes | None
    value: bytes | None
    failure: Failure | None = field(default_factory=Failure)
    partition: int = 0
    timestamp: int = BASE_TS

    @property
    def headers(self) -> list[Header]:
        return [] if self.failure is None else self.failure.headers()


@dataclass(frozen=True)
class Read:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[Header]
    timestamp: int


@dataclass(frozen=True)
class Topics:
    source: str
    dlq: str

    @property
    def parked(self) -> str:
        return self.dlq + ".parked"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def json_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.out.splitlines()]


@pytest.fixture
def topics(make_topic: Callable[..., str]) -> Topics:
    source = make_topic(partitions=2)
    return Topics(source, make_topic(partitions=2, name=source + ".dlq"))


@pytest.fixture(params=["classic", "consumer"])
def group_protocol(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The replay's consumer group under each group protocol; the environment that selects it is set."""
    env = {"KAFKA_CONFIG_GROUP_PROTOCOL": request.param}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def cli(kafka: KafkaEndpoint, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    def run(*argv: str) -> Result:
        code = main([*argv, "--brokers", kafka.bootstrap_servers])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def seed(kafka: KafkaEndpoint, topic: str, seeds: list[Seed]) -> None:
    producer = Producer({"bootstrap.servers": kafka.bootstrap_servers, "acks": "all", "enable.idempotence": True})
    for s in seeds:
        producer.produce(
            topic, key=s.key, value=s.value, headers=s.headers, partition=s.partition, timestamp=s.timestamp
        )
    assert producer.flush(30) == 0


def read_topic(kafka: KafkaEndpoint, topic: str) -> list[Read]:
    """Every record of ``topic`` now, by partition and offset (an independent reader, not the tool's)."""
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"verify-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
        pending = {p for p, end in ends.items() if end > 0}
        records: list[Read] = []
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            for m in consumer.consume(100, 0.5):
                if m.error():
                    assert m.error().code() == KafkaError._PARTITION_EOF
                    pending.discard(m.partition())
                    continue
                records.append(Read(m.partition(), m.offset(), m.key(), m.value(), m.headers() or [], m.timestamp()[1]))
        assert not pending, f"could not read {topic} to its end"
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def committed(kafka: KafkaEndpoint, group: str, topic: str, partitions: int = 2) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": group})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in offsets if tp.offset >= 0}
    finally:
        consumer.close()


def topic_setting(kafka: KafkaEndpoint, topic: str, name: str) -> str:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return str(kafka.admin.describe_configs([resource])[resource].result(10)[name].value)


def own_headers(headers: list[Header]) -> list[Header]:
    return [(name, value) for name, value in headers if not name.startswith("dlq.")]


# -- list / show / stats ------------------------------------------------------------------------------


MIXED = [
    Seed(b"rec-a", envelope("rec-a"), Failure(original_partition=1, original_offset=40, reason="poison")),
    Seed(
        b"rec-b",
        envelope("rec-b"),
        Failure(
            reason="retries_exhausted",
            exception_type="builtins.TimeoutError",
            exception_message="directory timed out",
            attempts=5,
            failed_at=minutes_after_base(30),
        ),
        partition=1,
    ),
    Seed(None, b"\xff\x00 not json", Failure(reason="decode", exception_type="neotool_common.errors.DecodeError")),
    Seed(b"\xfe\xff", envelope("from-envelope"), Failure(reason="validation", replay_count=2), partition=1),
    Seed(b"stray", b"written by hand", failure=None),
]


def expected_row(s: Seed, partition_offsets: dict[int, int], source: str, record_id: str) -> dict[str, object]:
    offset = partition_offsets[s.partition]
    partition_offsets[s.partition] += 1
    f = s.failure
    if f is None:
        return {
            "offset": offset,
            "partition": s.partition,
            "record_id": record_id,
            **dict.fromkeys(("reason", "exception_type", "exception_message", "path", "original_topic"), None),
            **dict.fromkeys(("original_partition", "original_offset", "failed_at", "attempts"), None),
            "replay_count": 0,
            "retry_history": [],
            "replayed_by": [],
        }
    return {
        "offset": offset,
        "partition": s.partition,
        "record_id": record_id,
        "reason": f.reason,
        "exception_type": f.exception_type,
        "exception_message": f.exception_message,
        "path": "$.payload.amount",  # the dlq.path every seeded failure carries
        "original_topic": source,
        "original_partition": f.original_partition,
        "original_offset": f.original_offset,
        "failed_at": f.failed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "attempts": f.attempts,
        "replay_count": f.replay_count or 0,
        "retry_history": [],
        "replayed_by": [],
    }


def with_source(seeds: list[Seed], source: str) -> list[Seed]:
    return [Seed(s.key, s.value, _retarget(s.failure, source), s.partition, s.timestamp) for s in seeds]


def _retarget(failure: Failure | None, source: str) -> Failure | None:
    if failure is None or failure.original_topic is None:
        return failure
    return Failure(**{**failure.__dict__, "original_topic": source})


def test_list_json_matches_what_was_dead_lettered(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]
) -> None:
    seeds = with_source(MIXED, topics.source)
    seed(kafka, topics.dlq, seeds)
    offsets = {0: 0, 1: 0}
    expected = [
        expected_row(s, offsets, topics.source, rid)
        for s, rid in zip(seeds, ["rec-a", "rec-b", "", "from-envelope", "stray"], strict=True)
    ]

    result = cli("list", topics.dlq, "--json")

    assert result.code == 0
    assert sorted(result.json_lines, key=lambda r: (r["partition"], r["offset"])) == sorted(
        expected, key=lambda r: (r["partition"], r["offset"])
    )


def test_list_prints_a_table_and_the_next_commands(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]
) -> None:
    seed(kafka, topics.dlq, with_source(MIXED, topics.source))

    result = cli("list", topics.dlq, "--reason", "poison", "--reason", "decode")

    lines = result.out.splitlines()
    assert result.code == 0
    assert lines[0].split()[:4] == ["PARTITION", "OFFSET", "FAILED_AT", "REASON"]
    assert [line.split()[3] for line in lines[1:3]] == ["poison", "decode"]
    assert lines[3] == ""
    assert lines[4] == f"{topics.dlq}: 2 of 5 record(s) match."
    assert (
        lines[5]
        == f"  inspect one:  neotool-dlq show {topics.dlq} --partition 0 --offset 0 --brokers {kafka.bootstrap_servers}"
    )
    assert lines[6] == (
        f"  replay them:  neotool-dlq replay {topics.dlq} --reason decode --reason poison --dry-run "
        f"--brokers {kafka.bootstrap_servers}   (then again without --dry-run)"
    )


def test_list_reads_to_the_end_and_stops_on_an_empty_topic(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]
) -> None:
    result = cli("list", topics.dlq)

    assert (result.code, result.out) == (0, f"{topics.dlq}: empty.\n")


def test_list_and_stats_do_not_create_groups_or_commit(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]
) -> None:
    seed(kafka, topics.dlq, with_source(MIXED, topics.source))
    before = {g.group_id for g in kafka.admin.list_consumer_groups().result(10).valid}

    assert cli("list", topics.dlq).code == 0
    assert cli("stats", topics.dlq).code == 0
    assert cli("show", topics.dlq, "--partition", "1", "--offset", "0").code == 0

    after = {g.group_id for g in kafka.admin.list_consumer_groups().result(10).valid}
    assert after == before


def test_show_prints_headers_stack_trace_and_a_safe_payload(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]
) -> None:
    seed(kafka, topics.dlq, with_source(MIXED, topics.source))

    pretty = cli("show", topics.dlq, "--partition", "0", "--offset", "0")
    binary = cli("show", topics.dlq, "--partition", "0", "--offset", "1")

    assert pretty.code == 0
    assert f"Record {topics.dlq}[0]@0" in pretty.out
    assert f"  dlq.original.topic = {topics.source}" in pretty.out
    assert "  traceparent = 00-4bf92f3577b34da6-00f067aa0ba902b7-01" in pretty.out
    assert 'Stack trace\n  Traceback (most recent call last):\n    File "job.py", line 9' in pretty.out
    assert '    "record_id": "rec-a",' in pretty.out
    assert (
        f"Replay just this record: neotool-dlq replay {topics.dlq} --partition 0 --offset-from 0 --offset-to 0 "
        f"--dry-run --brokers {kafka.bootstrap_servers}"
    ) in pretty.out
    assert binary.code == 0
    assert "Value (not UTF-8, 11 bytes; hex of the first 256)" in binary.out
    assert "  00000000  ff 00 20 6e 6f 74 20 6a 73 6f 6e" in binary.out


def test_show_names_the_valid_offsets_when_asked_for_a_missing_one(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]
) -> None:
    seed(kafka, topics.dlq, with_source(MIXED, topics.source))

    beyond = cli("show", topics.dlq, "--partition", "0", "--offset", "99")
    ambiguous = cli("show", topics.dlq, "--offset", "0")
    unambiguous = cli("show", topics.dlq, "--offset", "2")

    assert (beyond.code, beyond.out) == (2, "")
    assert beyond.err == f"neotool-dlq: --offset: no record at 99: partition 0 of {topics.dlq} holds offsets 0 to 2\n"
    assert ambiguous.code == 2
    assert ambiguous.err == f"neotool-dlq: --partition: offset 0 exists in partitions 0, 1 of {topics.dlq}; say which\n"
    assert unambiguous.code == 0
    assert unambiguous.out.startswith(f"Record {topics.dlq}[0]@2\n")


def test_stats_count_by_reason_type_and_topic(kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]) -> None:
    seed(kafka, topics.dlq, with_source(MIXED, topics.source))

    as_json = cli("stats", topics.dlq, "--json")
    as_text = cli("stats", topics.dlq, "--exception-type", "BadAmount")

    stats = json.loads(as_json.out)
    assert stats["total"] == 5
    assert stats["by_reason"] == {"poison": 1, "retries_exhausted": 1, "decode": 1, "validation": 1, "(none)": 1}
    assert stats["by_exception_type"] == {
        "orders.errors.BadAmount": 2,
        "builtins.TimeoutError": 1,
        "neotool_common.errors.DecodeError": 1,
        "(none)": 1,
    }
    assert stats["by_original_topic"] == {topics.source: 4, "(none)": 1}
    assert stats["replayed_before"] == 1
    assert stats["oldest_failure"] == "2024-05-01T03:00:00+00:00"
    assert stats["newest_failure"] == "2024-05-01T03:30:00+00:00"
    assert as_text.out.startswith(f"{topics.dlq}: 2 of 5 record(s) match.\n")
    assert "  poison  " in as_text.out
    assert "  validation  " in as_text.out


def test_filters_select_exactly_the_matching_records(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]
) -> None:
    seed(kafka, topics.dlq, with_source(MIXED, topics.source))

    def ids(*filters: str) -> list[str]:
        return sorted(str(row["record_id"]) for row in cli("list", topics.dlq, "--json", *filters).json_lines)

    assert ids("--reason", "retries_exhausted") == ["rec-b"]
    assert ids("--exception-type", "TimeoutError") == ["rec-b"]
    assert ids("--exception-type", "orders.errors.BadAmount") == ["from-envelope", "rec-a"]
    assert ids("--record-id", "rec-a", "--record-id", "stray") == ["rec-a", "stray"]
    assert ids("--partition", "1") == ["from-envelope", "rec-b"]
    assert ids("--partition", "0", "--offset-from", "1", "--offset-to", "2") == ["", "stray"]
    assert ids("--since", "2024-05-01T03:15:00Z") == ["rec-b"]
    assert ids("--until", "2024-05-01T03:15:00Z") == ["", "from-envelope", "rec-a"]
    assert ids("--since", "1d") == []
    assert len(ids("--limit", "2")) == 2


# -- replay -------------------------------------------------------------------------------------------


def replayable(source: str, count: int) -> list[Seed]:
    return [
        Seed(
            f"rec-{i}".encode(),
            envelope(f"rec-{i}", {"n": i}),
            Failure(original_topic=source, original_partition=i % 2, original_offset=i, reason="poison"),
            partition=i % 2,
            timestamp=BASE_TS + i,
        )
        for i in range(count)
    ]


def test_dry_run_prints_the_plan_and_produces_nothing(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]
) -> None:
    seed(kafka, topics.dlq, replayable(topics.source, 4))

    result = cli("replay", topics.dlq, "--dry-run")

    assert result.code == 0
    assert result.out.count("would replay  ") == 4
    where = f"{topics.dlq}[1]@0  record_id=rec-1  -> {topics.source}[1]  for group orders-job"
    assert f"would replay  {where}  (replay 1 of 3)" in result.out
    assert "Dry run: 4 would be replayed, 0 parked, 0 cannot be replayed, 0 skipped by the filter." in result.out
    assert "The copies would be processed by group orders-job (4)." in result.out
    assert f"Run it: neotool-dlq replay {topics.dlq} --brokers {kafka.bootstrap_servers}" in result.out
    assert read_topic(kafka, topics.source) == []
    assert committed(kafka, f"neotool-dlq-replay.{topics.dlq}", topics.dlq) == {}


def test_replay_restores_byte_identical_records_once(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result], group_protocol: dict[str, str]
) -> None:
    own: tuple[Header, ...] = (("traceparent", b"00-aa-bb-01"), ("tenant", None), ("tenant", b"\xffbin"))
    seeds = [
        *replayable(topics.source, 4),
        Seed(None, b"\xff\x00binary", Failure(topics.source, 1, 9, reason="decode", own_headers=own), partition=1),
        Seed(b"\xfe\xff", None, Failure(topics.source, 0, 10, replay_count=1, own_headers=own), timestamp=BASE_TS + 9),
    ]
    seed(kafka, topics.dlq, seeds)

    replay_started_ms = int(time.time() * 1000)
    first = cli("replay", topics.dlq)
    second = cli("replay", topics.dlq)

    assert first.code == 0, first.out + first.err
    assert "Replayed 6 record(s) to their original topics; 0 skipped by the filter." in first.out
    replayed = read_topic(kafka, topics.source)
    expected = [
        (
            s.failure.original_partition if s.failure else -1,
            s.key,
            s.value,
            [
                *own_headers(s.headers),
                ("dlq.replay.count", str((s.failure.replay_count or 0) + 1).encode()),
                ("dlq.replay.group", b"orders-job"),
            ],
        )
        for s in seeds
    ]
    actual = [(r.partition, r.key, r.value, r.headers) for r in replayed]
    assert sorted(actual, key=repr) == sorted(expected, key=repr)
    assert all(r.timestamp >= replay_started_ms for r in replayed), "a replayed record is a new event"
    assert second.code == 0
    assert "Replayed 0 record(s)" in second.out
    assert f"Nothing to replay: group neotool-dlq-replay.{topics.dlq} is at the end" in second.out
    assert len(read_topic(kafka, topics.source)) == 6
    assert committed(kafka, f"neotool-dlq-replay.{topics.dlq}", topics.dlq) == {0: 3, 1: 3}


class RecordedProgress:
    """What a progress bar was asked to draw, in order."""

    def __init__(self) -> None:
        self.drawn: list[tuple[int, int, int]] = []

    def update(self, done: int, total: int, replayed: int) -> None:
        self.drawn.append((done, total, replayed))

    def close(self) -> None:
        pass


def test_the_progress_bar_ends_on_the_count_the_summary_prints(
    topics: Topics, kafka: KafkaEndpoint, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(kafka, topics.dlq, replayable(topics.source, 5))
    progress = RecordedProgress()
    monkeypatch.setattr("neotool_common.cli.dlq_replay._progress", lambda: progress)

    result = cli("replay", topics.dlq)

    assert "Replayed 5 record(s)" in result.out, result.out + result.err
    assert progress.drawn[-1] == (5, 5, 5), "the last acknowledgements are drawn before the bar closes"


def test_a_replayed_or_parked_copy_of_an_old_dead_letter_is_stamped_with_the_time_it_is_written(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], cli: Callable[..., Result]
) -> None:
    """A copy that outlives its source must not be due for its topic's retention the moment it is written."""
    source = make_topic(partitions=2)
    # Month-old seeds: the broker itself must not delete them before the replay reads them.
    dlq = make_topic(partitions=2, name=source + ".dlq", config={"retention.ms": "-1"})
    parked = make_topic(partitions=2, name=dlq + ".parked")
    month_ago = int(time.time() * 1000) - 30 * 86_400_000
    old = Seed(b"old", envelope("old"), Failure(source, 0, 5), timestamp=month_ago)
    looping = Seed(b"looping", envelope("looping"), Failure(source, 1, 6, replay_count=3), 1, month_ago)
    seed(kafka, dlq, [old, looping])

    started_ms = int(time.time() * 1000)
    result = cli("replay", dlq, "--max-replays", "3")
    finished_ms = int(time.time() * 1000)

    assert result.code == 1, "a record was parked"
    [back] = read_topic(kafka, source)
    [moved] = read_topic(kafka, parked)
    assert (back.key, moved.key) == (b"old", b"looping"), "each went where it belongs"
    for copy in (back, moved):
        assert started_ms - 1000 <= copy.timestamp <= finished_ms + 1000, f"{copy.key!r} stamped {copy.timestamp}"
    assert dict(moved.headers)["dlq.original.timestamp"] == b"1714532340000", "the source's timestamp is kept"
    assert committed(kafka, f"neotool-dlq-replay.{dlq}", dlq) == {0: 1, 1: 1}, "the replay went to the end"


def test_from_beginning_rescans_on_purpose(kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]) -> None:
    seed(kafka, topics.dlq, replayable(topics.source, 2))
    assert cli("replay", topics.dlq).code == 0

    again = cli("replay", topics.dlq, "--from-beginning")

    assert again.code == 0
    assert "from the beginning (records replayed before are sent again)" in again.out
    assert Counter(r.key for r in read_topic(kafka, topics.source)) == {b"rec-0": 2, b"rec-1": 2}


def test_a_filtered_replay_keeps_its_own_progress(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]
) -> None:
    seeds = replayable(topics.source, 4)
    seeds[1] = Seed(seeds[1].key, seeds[1].value, Failure(topics.source, 1, 1, reason="decode"), partition=1)
    seed(kafka, topics.dlq, seeds)

    filtered = cli("replay", topics.dlq, "--reason", "decode")
    filtered_again = cli("replay", topics.dlq, "--reason", "decode")
    unfiltered = cli("replay", topics.dlq)

    assert filtered.code == 0
    assert "Replayed 1 record(s) to their original topics; 3 skipped by the filter." in filtered.out
    assert "Replayed 0 record(s)" in filtered_again.out
    assert "Replayed 4 record(s) to their original topics; 0 skipped by the filter." in unfiltered.out
    assert filtered.err == ""
    decode_group = default_group(RecordFilter(reasons=frozenset({"decode"})), ReplayPolicy(dlq_topic=topics.dlq))
    assert unfiltered.err.startswith(
        f"note: 1 filtered replay(s) of {topics.dlq} ran before ({decode_group}); "
        "the records they sent are sent again by this unfiltered replay\n"
        "warning: decode and validation records come straight back"
    )
    counts = Counter(r.key for r in read_topic(kafka, topics.source))
    assert counts == {b"rec-0": 1, b"rec-1": 2, b"rec-2": 1, b"rec-3": 1}, "the unfiltered group saw everything"


def test_limit_replays_the_first_records_and_a_rerun_continues(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], cli: Callable[..., Result]
) -> None:
    source = make_topic(partitions=1)
    dlq = make_topic(partitions=1, name=source + ".dlq")
    seed(kafka, dlq, [Seed(s.key, s.value, s.failure, 0, s.timestamp) for s in replayable(source, 5)])

    first = cli("replay", dlq, "--limit", "2")
    rest = cli("replay", dlq)

    assert "Replayed 2 record(s)" in first.out
    assert "Replayed 3 record(s)" in rest.out
    assert [r.key for r in read_topic(kafka, source)] == [b"rec-0", b"rec-1", b"rec-2", b"rec-3", b"rec-4"]


def test_records_that_cannot_be_replayed_are_listed_and_exit_1(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result], make_topic: Callable[..., str]
) -> None:
    seeds = [
        *replayable(topics.source, 2),
        Seed(b"stray", b"written by hand", failure=None),
        Seed(b"lost", envelope("lost"), Failure(original_topic=f"{topics.source}.gone")),
        Seed(b"loop", envelope("loop"), Failure(original_topic=topics.dlq)),
    ]
    seed(kafka, topics.dlq, seeds)

    result = cli("replay", topics.dlq)
    elsewhere = make_topic(partitions=1)
    redirected = cli("replay", topics.dlq, "--record-id", "stray", "--to", elsewhere)

    assert result.code == 1
    assert "Replayed 2 record(s)" in result.out
    assert "Could not replay 3 record(s):" in result.out
    assert f"{topics.dlq}[0]@1  record_id=stray  no dlq.original.topic header" in result.out
    assert f"record_id=lost  target topic '{topics.source}.gone' does not exist" in result.out
    assert f"record_id=loop  refusing to replay into dead-letter topic '{topics.dlq}'" in result.out
    assert f"      inspect: neotool-dlq show {topics.dlq} --partition 0 --offset 1" in result.out
    assert sorted(r.key for r in read_topic(kafka, topics.source)) == [b"rec-0", b"rec-1"]
    assert redirected.code == 0
    assert [(r.key, r.value) for r in read_topic(kafka, elsewhere)] == [(b"stray", b"written by hand")]


def test_the_loop_guard_parks_records_replayed_too_often(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result], make_topic: Callable[..., str]
) -> None:
    parked = make_topic(partitions=2, name=topics.parked)
    almost = Seed(b"almost", envelope("almost"), Failure(topics.source, 0, 1, replay_count=2))
    looping = Seed(b"looping", envelope("looping"), Failure(topics.source, 1, 2, replay_count=3), partition=1)
    seed(kafka, topics.dlq, [almost, looping])

    result = cli("replay", topics.dlq, "--max-replays", "3")

    assert result.code == 1
    assert f"Parked 1 record(s) in {parked} (loop guard):" in result.out
    assert "record_id=looping  replayed 3 time(s) already (--max-replays 3)" in result.out
    [back] = read_topic(kafka, topics.source)
    assert (back.key, dict(back.headers)["dlq.replay.count"]) == (b"almost", b"3")
    [moved] = read_topic(kafka, parked)
    assert (moved.partition, moved.key, moved.value, moved.headers) == (1, b"looping", looping.value, looping.headers)


def test_the_parked_topic_is_created_like_the_dlq_when_missing(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]
) -> None:
    seed(kafka, topics.dlq, [Seed(b"looping", envelope("looping"), Failure(topics.source, 0, 0, replay_count=1))])

    dry = cli("replay", topics.dlq, "--max-replays", "1", "--dry-run")
    result = cli("replay", topics.dlq, "--max-replays", "1")

    assert dry.code == 1
    assert f"would park    {topics.dlq}[0]@0  record_id=looping  -> {topics.parked}" in dry.out
    assert result.code == 1
    assert f"created topic {topics.parked} (2 partition(s)) for parked records" in result.err
    metadata = kafka.admin.list_topics(topics.parked, timeout=10).topics[topics.parked]
    assert len(metadata.partitions) == 2
    assert [r.key for r in read_topic(kafka, topics.parked)] == [b"looping"]
    assert read_topic(kafka, topics.source) == []


def test_no_park_reports_looping_records_and_moves_nothing(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result], make_topic: Callable[..., str]
) -> None:
    make_topic(partitions=2, name=topics.parked)
    seed(kafka, topics.dlq, [Seed(b"looping", envelope("looping"), Failure(topics.source, 0, 0, replay_count=3))])

    result = cli("replay", topics.dlq, "--no-park")

    assert result.code == 1
    assert "record_id=looping  replayed 3 time(s) already (--max-replays 3); not parked (--no-park)" in result.out
    assert read_topic(kafka, topics.parked) == []
    assert read_topic(kafka, topics.source) == []


def test_a_copy_the_broker_refuses_stops_the_replay_before_it(
    kafka: KafkaEndpoint, make_topic: Callable[..., str], cli: Callable[..., Result]
) -> None:
    source = make_topic(partitions=1, config={"max.message.bytes": "2000"})
    dlq = make_topic(partitions=1, name=source + ".dlq")
    incompressible = base64.b64encode(os.urandom(4000)).decode()  # the producer compresses with zstd
    small, big = envelope("small"), envelope("big", {"blob": incompressible})
    seeds = [Seed(f"rec-{i}".encode(), value, Failure(source, 0, i)) for i, value in enumerate([small, big, small])]
    seed(kafka, dlq, seeds)

    refused = cli("replay", dlq, "--max-in-flight", "1")  # one record per produce batch: rec-1 is refused alone
    saved = committed(kafka, f"neotool-dlq-replay.{dlq}", dlq, partitions=1)
    resource = ConfigResource(ResourceType.TOPIC, source)
    entry = ConfigEntry("max.message.bytes", "100000", incremental_operation=AlterConfigOpType.SET)
    resource.add_incremental_config(entry)
    kafka.admin.incremental_alter_configs([resource])[resource].result(30)
    wait_until(lambda: topic_setting(kafka, source, "max.message.bytes") == "100000", what="the new limit")
    fixed = cli("replay", dlq)

    assert refused.code == 1
    assert "Replayed 1 record(s)" in refused.out
    assert "Failed to write 1 record(s); the replay stopped before them:" in refused.out
    assert f"  {dlq}[0]@1  -> {source}: Broker: Message size too large" in refused.out
    assert saved == {0: 1}, "progress stops before the refused record"
    assert fixed.code == 0
    assert "Replayed 2 record(s)" in fixed.out
    assert [r.key for r in read_topic(kafka, source)] == [b"rec-0", b"rec-1", b"rec-2"], "each exactly once"


def test_rate_spaces_the_records(kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]) -> None:
    seed(kafka, topics.dlq, replayable(topics.source, 6))

    started = time.monotonic()
    result = cli("replay", topics.dlq, "--rate", "20")
    elapsed = time.monotonic() - started

    assert result.code == 0
    assert elapsed >= 5 / 20
    assert len(read_topic(kafka, topics.source)) == 6


# -- crashes and interrupts (subprocesses) -------------------------------------------------------------


@pytest.fixture
def fast_expiry(monkeypatch: pytest.MonkeyPatch, group_protocol: dict[str, str]) -> dict[str, str]:
    """A short group session, so the member a killed replay leaves behind expires quickly (the consumer
    protocol's is the broker's: 6 s in the test kit)."""
    settings = group_timing(group_protocol, session_ms=1500, heartbeat_ms=300)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **settings}


@pytest.fixture
def paused_replay(kafka: KafkaEndpoint) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``neotool-dlq replay`` in a subprocess that pauses after N acknowledged records."""
    started: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str], pause_after: int, *argv: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "neotool_common.cli.dlq", "replay", *argv, "--brokers", kafka.bootstrap_servers],
            env={**env, PAUSE_AFTER_ACKS_ENV: str(pause_after)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stderr is not None
        for line in process.stderr:
            if line.startswith("test hook: paused after"):
                return process
        out, _ = process.communicate(timeout=30)
        raise AssertionError(f"the replay ended (exit {process.returncode}) before pausing:\n{out}")

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_a_killed_replay_loses_nothing_and_resends_at_most_what_was_in_flight(
    kafka: KafkaEndpoint,
    make_topic: Callable[..., str],
    cli: Callable[..., Result],
    fast_expiry: dict[str, str],
    paused_replay: Callable[..., subprocess.Popen[str]],
) -> None:
    source = make_topic(partitions=1)
    dlq = make_topic(partitions=1, name=source + ".dlq")
    seed(kafka, dlq, [Seed(s.key, s.value, s.failure, 0, s.timestamp) for s in replayable(source, 40)])

    process = paused_replay(fast_expiry, 25, dlq, "--max-in-flight", "10")
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    saved = committed(kafka, f"neotool-dlq-replay.{dlq}", dlq, partitions=1).get(0, 0)
    rerun = cli("replay", dlq)

    assert process.returncode == -signal.SIGKILL
    assert 10 <= saved <= 25, "progress was committed in steps of at most --max-in-flight, never past an unacked copy"
    assert rerun.code == 0, rerun.out + rerun.err
    counts = Counter(int(r.key.decode().removeprefix("rec-")) for r in read_topic(kafka, source) if r.key)
    assert set(counts) == set(range(40)), "nothing lost"
    duplicated = {n for n, times in counts.items() if times > 1}
    assert max(counts.values()) <= 2
    assert duplicated <= set(range(saved, saved + 10)), "only records sent after the last commit come twice"


def test_ctrl_c_stops_cleanly_with_progress_saved(
    kafka: KafkaEndpoint,
    make_topic: Callable[..., str],
    cli: Callable[..., Result],
    fast_expiry: dict[str, str],
    paused_replay: Callable[..., subprocess.Popen[str]],
) -> None:
    source = make_topic(partitions=1)
    dlq = make_topic(partitions=1, name=source + ".dlq")
    seed(kafka, dlq, [Seed(s.key, s.value, s.failure, 0, s.timestamp) for s in replayable(source, 30)])

    process = paused_replay(fast_expiry, 12, dlq, "--max-in-flight", "5")
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    rerun = cli("replay", dlq)

    assert process.returncode == 130
    assert f"Interrupted: progress saved in group neotool-dlq-replay.{dlq}; run the same command to continue." in out
    assert rerun.code == 0
    keys = [r.key for r in read_topic(kafka, source)]
    assert sorted(keys) == sorted(f"rec-{i}".encode() for i in range(30)), "each record exactly once"


# -- usage and configuration errors --------------------------------------------------------------------


def test_an_unreachable_broker_is_one_line_and_exit_2() -> None:
    port = free_port()

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "neotool_common.cli.dlq",
            "list",
            "t.dlq",
            "--brokers",
            f"127.0.0.1:{port}",
            "--timeout",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"neotool-dlq: KAFKA_BROKERS: cannot reach 127.0.0.1:{port} within 1s (")
    assert "Connection refused" in result.stderr


def test_a_missing_topic_is_one_line_and_exit_2_with_a_suggestion(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]
) -> None:
    misspelt = topics.dlq[:-1] + "x"

    result = cli("list", misspelt)
    to_missing = cli("replay", topics.dlq, "--to", topics.source + ".nowhere")

    assert (result.code, result.out) == (2, "")
    assert result.err.startswith(
        f"neotool-dlq: DLQ_TOPIC: topic {misspelt!r} does not exist; did you mean {topics.dlq}"
    )
    assert result.err.count("\n") == 1
    assert to_missing.code == 2
    assert to_missing.err.startswith(f"neotool-dlq: --to: topic '{topics.source}.nowhere' does not exist")


# -- at 3 AM: pipes, what the replays already sent, records that come straight back, a topic that is no DLQ -----


def test_a_closed_pipe_ends_list_and_stats_quietly_with_0(kafka: KafkaEndpoint, topics: Topics) -> None:
    seed(kafka, topics.dlq, replayable(topics.source, 300))
    brokers = ("--brokers", kafka.bootstrap_servers)
    for argv in (["list", topics.dlq], ["list", topics.dlq, "--json"], ["stats", topics.dlq]):
        command = " ".join([sys.executable, "-m", "neotool_common.cli.dlq", *argv, *brokers])
        result = subprocess.run(
            ["/bin/bash", "-o", "pipefail", "-c", f"{command} | head -1"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=os.environ,
        )
        assert (result.returncode, result.stderr) == (0, ""), argv
        assert len(result.stdout.splitlines()) == 1


def test_list_and_stats_say_what_the_replay_groups_already_sent(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]
) -> None:
    seed(kafka, topics.dlq, replayable(topics.source, 4))
    assert "replays: none yet" in cli("stats", topics.dlq).out

    assert cli("replay", topics.dlq).code == 0

    group = f"neotool-dlq-replay.{topics.dlq}"
    stats = cli("stats", topics.dlq)
    assert f"replays: {group} went past 4 of 4 record(s)" in stats.out
    assert json.loads(cli("stats", topics.dlq, "--json").out)["replay_groups"] == {group: 4}
    assert f"replays: {group} went past 4 of 4" in cli("list", topics.dlq).out
    rows = cli("list", topics.dlq, "--json").json_lines
    assert [row["replayed_by"] for row in rows] == [[group]] * 4


def test_an_unfiltered_replay_warns_that_decode_and_validation_records_come_back(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]
) -> None:
    seed(kafka, topics.dlq, with_source(MIXED, topics.source))

    dry = cli("replay", topics.dlq, "--dry-run")
    filtered = cli("replay", topics.dlq, "--dry-run", "--reason", "poison")

    assert "warning: 1 decode, 1 validation record(s) would be replayed" in dry.err
    assert "unless the producer or the schema was fixed" in dry.err
    assert "warning" not in filtered.err
    unfiltered = cli("replay", topics.dlq)
    assert "warning: decode and validation records come straight back" in unfiltered.err


def test_a_topic_without_dlq_headers_is_named_as_no_dead_letter_topic(
    kafka: KafkaEndpoint, topics: Topics, cli: Callable[..., Result]
) -> None:
    seed(kafka, topics.source, [Seed(b"k", envelope("plain"), failure=None)])

    listed = cli("list", topics.source)
    stats = cli("stats", topics.source)
    shown = cli("show", topics.source, "--offset", "0")

    for result in (listed, stats):
        assert result.code == 0
        assert f"none of the 1 record(s) read from {topics.source} carries dlq.* headers" in result.err
    assert "carries no dlq.* headers" in shown.err
    assert "dlq.* headers" not in cli("list", topics.dlq).err
