"""Bad bytes on a real topic: each bad record is dead-lettered once with its reason and path, never processed.

Not covered here: a header *name* that is not UTF-8. confluent-kafka cannot produce one: a ``bytes`` name is
sent as its ``str()`` (``"b'\\xff'"``, plain ASCII) and a ``str`` name holding a lone surrogate crashes the
producing process (segmentation fault in confluent-kafka 2.16). The runner's handling of such a record
(``dlq.reason=decode``, ``dlq.path=$headers``) is tested on an in-memory consumer in ``tests/unit/test_runner_loop``.
"""

from __future__ import annotations

import codecs
import json
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

from neotool_common.deadletter.headers import dlq_topic_for
from neotool_common.testing.harness import committed_offsets, read_topic, running, wait_until
from neotool_common.testing.kafka import KafkaEndpoint

from .runner_support import RecordingConsumer, envelope, produce, settings_for

# Room for the oversized record (above the decoder's 1 MiB limit) on the topic, its DLQ and the test producer.
LARGE = {"max.message.bytes": "2000000"}
DEPTH = 100_000


class SchemaConsumer(RecordingConsumer):
    payload_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {"n": {"type": "string"}}}


def fields(name: str, **changes: Any) -> bytes:
    """The envelope of ``name`` with fields replaced (``...`` removes one)."""
    document = json.loads(envelope(name))
    document.update(changes)
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


def spliced(record_id: str, extra: bytes) -> bytes:
    """The envelope's text with ``extra`` (raw JSON members) added at the end of its top-level object."""
    return envelope(record_id)[:-1] + b", " + extra + b"}"


def bad_records() -> list[tuple[str, bytes | None, str, str]]:
    """(name, value, dlq.reason, dlq.path) of every class of bad input."""
    good = envelope("x")
    return [
        ("latin-1 byte", good.replace(b'"x"', b'"caf\xe9"'), "decode", "$"),
        ("utf-16", good.decode().encode("utf-16"), "decode", "$"),
        ("utf-8 bom", codecs.BOM_UTF8 + good, "decode", "$"),
        ("truncated", good[: len(good) // 2], "decode", "$"),
        ("empty", b"", "decode", "$"),
        ("tombstone", None, "decode", "$"),
        ("top-level array", b"[" + good + b"]", "decode", "$"),
        ("duplicate top-level key", spliced("dup", b'"record_id": "dup-again"'), "decode", "$..record_id"),
        ("duplicate nested key", spliced("dup", b'"extra": {"bic": "A", "bic": "B"}'), "decode", "$..bic"),
        ("NaN", spliced("nan", b'"score": NaN'), "decode", "$"),
        ("Infinity", spliced("inf", b'"score": Infinity'), "decode", "$"),
        ("1e400", spliced("big-float", b'"score": 1e400'), "decode", "$"),
        ("4301-digit integer", spliced("big-int", b'"score": ' + b"9" * 4301), "decode", "$"),
        ("100k levels", spliced("deep", b'"tree": ' + b'{"a":' * DEPTH + b"1" + b"}" * DEPTH), "decode", "$"),
        ("lone surrogate", spliced("surrogate", b'"name": "\\ud800"'), "decode", "$"),
        ("nul character", fields("nul", payload={"n": "a\u0000b"}), "decode", "$.payload.n"),
        ("missing batch_id", fields("no-batch", batch_id=...), "validation", "$.batch_id"),
        ("record_id not a string", fields("typed", record_id=42), "validation", "$.record_id"),
        ("uuid v1 batch_id", fields("v1", batch_id="c232ab00-9414-11ec-b3c8-9f6bdeced846"), "validation", "$.batch_id"),
        ("naive ingested_at", fields("naive", ingested_at="2024-05-01T12:00:00"), "validation", "$.ingested_at"),
        ("impossible date", fields("feb30", ingested_at="2024-02-30T12:00:00Z"), "validation", "$.ingested_at"),
        ("payload schema", fields("payload", payload={"n": 7}), "validation", "$.payload.n"),
        ("oversized", fields("big", payload={"n": "x" * 1_048_576}), "decode", "$"),
    ]


def tricky_good_records() -> list[tuple[str, bytes]]:
    """Valid records that look suspicious to a cheap check."""
    return [
        ("quote-colon", fields("quote-colon", payload={"n": 'she said ":" twice', "m": '":'})),
        ("escaped-backslash", fields("escaped-backslash", payload={"n": "C:\\u0000"})),
    ]


def test_each_bad_record_is_dead_lettered_once_and_good_ones_are_processed_in_order(
    kafka: KafkaEndpoint, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(config=LARGE)
    make_topic(name=dlq_topic_for(topic), config=LARGE)
    bad = bad_records()
    good_ids = [f"good-{i}" for i in range(len(bad))] + [name for name, _ in tricky_good_records()]
    records: list[tuple[bytes | None, bytes | None]] = []
    for i, (name, value, _, _) in enumerate(bad):
        records += [(name.encode(), value), (f"good-{i}".encode(), envelope(f"good-{i}"))]
    records += [(name.encode(), value) for name, value in tricky_good_records()]
    produce(kafka.bootstrap_servers, topic, records, config={"message.max.bytes": 2_000_000})
    runner = SchemaConsumer(settings_for(kafka.bootstrap_servers, topic))

    with running(runner):
        wait_until(lambda: len(runner.processed) == len(good_ids), what="every good record processed")
        dead = read_topic(kafka.bootstrap_servers, dlq_topic_for(topic), expect=len(bad))
        wait_until(
            lambda: committed_offsets(kafka.bootstrap_servers, runner.settings.group_id, topic, 1)[0] == len(records),
            what="the commit past the last record",
        )

    assert [m.record_id for m in runner.processed] == good_ids, "good records once each, in order"
    assert runner.attempts == dict.fromkeys(good_ids, 1), "bad records never reach process(); nothing retried"
    copies = Counter(int(record.header("dlq.original.offset") or -1) for record in dead)
    assert copies == Counter(range(0, 2 * len(bad), 2)), "each bad record in the DLQ exactly once"
    for record in dead:
        name, value, reason, path = bad[int(record.header("dlq.original.offset") or -1) // 2]
        assert record.key == name.encode()
        assert (record.header("dlq.reason"), record.header("dlq.path")) == (reason, path), name
        assert record.value == value, f"{name}: the original bytes, untouched"
        assert record.header("dlq.attempts") == "1", name
    reasons = Counter(reason for _, _, reason, _ in bad)
    for reason, count in reasons.items():
        labels = {"topic": topic, "group": runner.settings.group_id, "reason": reason}
        assert runner.registry.get_sample_value("neotool_consumer_dlq_messages_total", labels) == count
    assert (
        runner.registry.get_sample_value(
            "neotool_consumer_retries_total", {"topic": topic, "group": runner.settings.group_id}
        )
        == 0
    )
