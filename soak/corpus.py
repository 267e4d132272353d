"""The bad-input corpus: every class of bytes the runner must dead-letter, and valid records that look bad.

Each bad record is a :class:`~soak.workload.Planned` whose ``expect`` is the ``dlq.reason`` it must get;
the soak consumer's payload schema (:data:`soak.consumer.PAYLOAD_SCHEMA`) forbids unknown payload fields and
wants an integer ``seq``. :data:`RAW_HEADER_NAME` is written with :mod:`soak.rawproduce`.
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from soak.workload import PROCESS, Planned, envelope

__all__ = ["RAW_HEADER_NAME", "bad_records", "tricky_good_records"]

DEPTH = 100_000
OVERSIZED = 1_048_576 + 1024
# A header name that is not UTF-8 (0xff never occurs in UTF-8) on an otherwise valid record.
RAW_HEADER_NAME = b"trace\xff\xfeid"


def _fields(key: str, **changes: Any) -> bytes:
    """The envelope of ``key`` with fields replaced (``...`` removes one)."""
    document = json.loads(envelope(key, {"seq": 1}))
    document.update(changes)
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


def _spliced(key: str, members: bytes) -> bytes:
    """The envelope's text with raw JSON ``members`` added at the end of its payload object."""
    return envelope(key, {"seq": 1})[:-2] + b"," + members + b"}}"


def bad_records() -> list[Planned]:
    cases: list[tuple[str, Any, str]] = [
        ("latin-1", lambda k: envelope(k, {"seq": 1, "pad": "x"}).replace(b'"x"', b'"caf\xe9"'), "decode"),
        ("utf-16", lambda k: envelope(k, {"seq": 1}).decode().encode("utf-16"), "decode"),
        ("utf-8-bom", lambda k: codecs.BOM_UTF8 + envelope(k, {"seq": 1}), "decode"),
        ("truncated", lambda k: envelope(k, {"seq": 1})[:40], "decode"),
        ("empty", lambda k: b"", "decode"),
        ("tombstone", lambda k: None, "decode"),
        ("top-level-array", lambda k: b"[" + envelope(k, {"seq": 1}) + b"]", "decode"),
        ("top-level-string", lambda k: json.dumps(envelope(k, {"seq": 1}).decode()).encode(), "decode"),
        ("duplicate-key", lambda k: _spliced(k, b'"seq":2'), "decode"),
        ("nan", lambda k: _spliced(k, b'"score":NaN'), "decode"),
        ("infinity", lambda k: _spliced(k, b'"score":-Infinity'), "decode"),
        ("1e400", lambda k: _spliced(k, b'"score":1e400'), "decode"),
        ("4301-digits", lambda k: _spliced(k, b'"score":' + b"9" * 4301), "decode"),
        ("deep-nesting", lambda k: _spliced(k, b'"tree":' + b'{"a":' * DEPTH + b"1" + b"}" * DEPTH), "decode"),
        ("lone-surrogate", lambda k: _spliced(k, b'"pad":"\\udc00"'), "decode"),
        ("nul-char", lambda k: envelope(k, {"seq": 1, "pad": "a\u0000b"}), "decode"),
        ("oversized", lambda k: envelope(k, {"seq": 1, "pad": "x" * OVERSIZED}), "decode"),
        ("missing-record-id", lambda k: _fields(k, record_id=...), "validation"),
        ("missing-payload", lambda k: _fields(k, payload=...), "validation"),
        ("record-id-number", lambda k: _fields(k, record_id=7), "validation"),
        ("empty-record-id", lambda k: _fields(k, record_id=""), "validation"),
        ("payload-extra-field", lambda k: envelope(k, {"seq": 1, "surprise": True}), "validation"),
        ("payload-seq-string", lambda k: envelope(k, {"seq": "1"}), "validation"),
        ("payload-not-object", lambda k: _fields(k, payload=[1, 2]), "validation"),
        ("batch-id-not-uuid", lambda k: _fields(k, batch_id="batch-42"), "validation"),
        ("batch-id-uuid-v1", lambda k: _fields(k, batch_id="c232ab00-9414-11ec-b3c8-9f6bdeced846"), "validation"),
        ("date-feb-30", lambda k: _fields(k, ingested_at="2026-02-30T10:00:00Z"), "validation"),
        ("date-no-offset", lambda k: _fields(k, ingested_at="2026-11-22T10:00:00"), "validation"),
        ("date-not-a-date", lambda k: _fields(k, ingested_at="yesterday"), "validation"),
        ("poison", lambda k: envelope(k, {"seq": 1, "poison": True}), "poison"),
    ]
    return [Planned(f"bad-{name}", make(f"bad-{name}"), reason) for name, make, reason in cases]


def tricky_good_records() -> list[Planned]:
    """Valid records a sloppy check would reject: they must be processed, never dead-lettered."""
    cases: list[tuple[str, Any, tuple[tuple[str, bytes], ...]]] = [
        ("escaped-nul-text", lambda k: envelope(k, {"seq": 1, "pad": "C:\\u0000"}), ()),
        ("quotes-and-colons", lambda k: envelope(k, {"seq": 1, "pad": 'she said ":" twice'}), ()),
        ("envelope-extra-field", lambda k: _fields(k, producer="billing-7", payload={"seq": 1}), ()),
        ("non-ascii", lambda k: envelope(k, {"seq": 1, "pad": "Zürich ☃ 𝄞"}), ()),
        ("big-but-allowed", lambda k: envelope(k, {"seq": 1, "pad": "y" * 900_000}), ()),
        ("header-value-not-utf8", lambda k: envelope(k, {"seq": 1}), (("traceparent", b"\xff\xfe\x00"),)),
        ("upper-case-uuid", lambda k: _fields(k, batch_id=json.loads(envelope(k, {}))["batch_id"].upper()), ()),
    ]
    return [Planned(f"good-{name}", make(f"good-{name}"), PROCESS, headers=headers) for name, make, headers in cases]
