"""A batch manifest: what one producer published of one batch, as its delivery reports told it.

Manifests live on ``<topic>.batches`` (compacted), keyed ``<batch_id>/<part>``: one record per part of a batch,
so a part re-published (after a spool re-send, say) replaces the earlier one, and reading the topic from its start
gives every batch ever published while it is retained. Announcements live on ``<topic>.batches.done``
(compacted), keyed ``<batch_id>/<group>``. The value is UTF-8 JSON (``schema`` ``neotool.batch-manifest.v1``).

A partition's share of a batch is a list of **runs**: inclusive ``[first, last]`` offset ranges that hold only
the batch's records. One producer writing alone gives one run per partition; records of other producers
interleaved with the batch's split it into several runs, so the manifest names exactly the batch's offsets
and a record is attributed to a batch by its position, never by reading its value (undecodable ones too).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

__all__ = [
    "ANNOUNCEMENT_SUFFIX",
    "MANIFEST_SCHEMA",
    "MANIFEST_SUFFIX",
    "BatchManifest",
    "PartitionSpan",
    "announcement_key",
    "announcement_topic_for",
    "manifest_key",
    "manifest_topic_for",
    "runs_of",
]

MANIFEST_SUFFIX: Final = ".batches"
ANNOUNCEMENT_SUFFIX: Final = ".batches.done"
MANIFEST_SCHEMA: Final = "neotool.batch-manifest.v1"

Run = tuple[int, int]


def manifest_topic_for(topic: str) -> str:
    return topic + MANIFEST_SUFFIX


def announcement_topic_for(topic: str) -> str:
    return topic + ANNOUNCEMENT_SUFFIX


def manifest_key(batch_id: str, part: str) -> str:
    return f"{batch_id}/{part}"


def announcement_key(batch_id: str, group: str) -> str:
    """The idempotency key of a (batch, group) settlement: the announcement's key and the hook's argument."""
    return f"{batch_id}/{group}"


def runs_of(offsets: Iterable[int]) -> tuple[Run, ...]:
    """Sorted, merged inclusive runs of ``offsets``: ``[3, 1, 2, 7]`` -> ``((1, 3), (7, 7))``."""
    runs: list[list[int]] = []
    for offset in sorted(set(offsets)):
        if runs and offset == runs[-1][1] + 1:
            runs[-1][1] = offset
        else:
            runs.append([offset, offset])
    return tuple((first, last) for first, last in runs)


@dataclass(frozen=True)
class PartitionSpan:
    """The batch's records in one partition: ``runs`` of inclusive offsets, ``count`` records in all."""

    partition: int
    runs: tuple[Run, ...]

    @property
    def count(self) -> int:
        return sum(last - first + 1 for first, last in self.runs)

    @property
    def first_offset(self) -> int:
        return self.runs[0][0]

    @property
    def last_offset(self) -> int:
        return self.runs[-1][1]

    def holds(self, offset: int) -> bool:
        return any(first <= offset <= last for first, last in self.runs)

    def count_below(self, committed: int) -> int:
        """How many of the batch's offsets are below ``committed`` (the group's next offset to read)."""
        return sum(max(0, min(last, committed - 1) - first + 1) for first, last in self.runs)

    def as_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "first_offset": self.first_offset,
            "last_offset": self.last_offset,
            "runs": [list(run) for run in self.runs],
        }


@dataclass(frozen=True)
class BatchManifest:
    """One part of one batch. ``records`` = ``acknowledged`` + ``spooled`` + ``lost``.

    ``spooled`` records finally failed and wait in the producer's spool (a later re-send puts them at offsets
    this manifest does not name: the batch stays open until a new manifest for the part names them); ``lost``
    ones failed and are in no spool. ``expected_parts`` is how many parts make the whole batch: every part
    declares it, so the batch's total is known once that many distinct parts are on the topic.
    """

    batch_id: str
    topic: str
    part: str
    expected_parts: int
    partitions: tuple[PartitionSpan, ...]
    spooled: int
    lost: int
    producer: str
    published_at: str  # ISO 8601 UTC
    published_at_ms: int

    @property
    def acknowledged(self) -> int:
        return sum(span.count for span in self.partitions)

    @property
    def records(self) -> int:
        return self.acknowledged + self.spooled + self.lost

    @property
    def complete(self) -> bool:
        """True when every record of the part is at an offset this manifest names."""
        return self.spooled == 0 and self.lost == 0

    @property
    def key(self) -> str:
        return manifest_key(self.batch_id, self.part)

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": MANIFEST_SCHEMA,
            "batch_id": self.batch_id,
            "topic": self.topic,
            "part": self.part,
            "expected_parts": self.expected_parts,
            "records": self.records,
            "acknowledged": self.acknowledged,
            "spooled": self.spooled,
            "lost": self.lost,
            "complete": self.complete,
            "partitions": {str(span.partition): span.as_json() for span in self.partitions},
            "producer": self.producer,
            "published_at": self.published_at,
            "published_at_ms": self.published_at_ms,
        }

    def encode(self) -> bytes:
        return orjson.dumps(self.as_json())

    @classmethod
    def decode(cls, value: bytes) -> BatchManifest:
        """Parse a manifest; raises ``ValueError`` (``orjson.JSONDecodeError`` is one), ``KeyError``, ``TypeError``."""
        document: Mapping[str, Any] = orjson.loads(value)
        if document.get("schema") != MANIFEST_SCHEMA:
            raise ValueError(f"not a {MANIFEST_SCHEMA} document")
        spans = tuple(
            PartitionSpan(int(partition), tuple((int(a), int(b)) for a, b in span["runs"]))
            for partition, span in sorted(document["partitions"].items(), key=lambda item: int(item[0]))
        )
        return cls(
            batch_id=str(document["batch_id"]),
            topic=str(document["topic"]),
            part=str(document["part"]),
            expected_parts=int(document["expected_parts"]),
            partitions=spans,
            spooled=int(document["spooled"]),
            lost=int(document["lost"]),
            producer=str(document["producer"]),
            published_at=str(document["published_at"]),
            published_at_ms=int(document["published_at_ms"]),
        )
