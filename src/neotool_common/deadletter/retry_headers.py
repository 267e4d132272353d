"""Headers of a record's copy in a retry topic; documented in ``schemas/retry-headers.md``.

Every hop *replaces* the ``retry.*`` headers of the copy it reads (nothing piles up however many hops a
record makes). The source record's coordinates and the root cause of its first failure are carried unchanged;
``retry.history`` is a JSON list of the failures so far, bounded in entries and bytes (:func:`bounded_history`).
A copy is stamped with the time it was written (its Kafka timestamp); ``retry.due_at`` says when it may be
tried again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "HISTORY_MAX_BYTES",
    "HISTORY_MAX_ENTRIES",
    "RETRY_ATTEMPTS",
    "RETRY_CONSUMER_GROUP",
    "RETRY_DUE_AT",
    "RETRY_HEADERS",
    "RETRY_HISTORY",
    "RETRY_ORIGINAL_OFFSET",
    "RETRY_ORIGINAL_PARTITION",
    "RETRY_ORIGINAL_TIMESTAMP",
    "RETRY_ORIGINAL_TOPIC",
    "RETRY_ROOT_EXCEPTION_MESSAGE",
    "RETRY_ROOT_EXCEPTION_TYPE",
    "RETRY_TIER",
    "bounded_history",
    "header_text",
    "history_entry",
    "parse_history",
    "root_cause",
]

RETRY_TIER = "retry.tier"  # 1 for the first delay tier, 2 for the second, ...
RETRY_DUE_AT = "retry.due_at"  # epoch milliseconds: not tried again before then
RETRY_ORIGINAL_TOPIC = "retry.original.topic"  # the source record's coordinates, kept across hops
RETRY_ORIGINAL_PARTITION = "retry.original.partition"
RETRY_ORIGINAL_OFFSET = "retry.original.offset"
RETRY_ORIGINAL_TIMESTAMP = "retry.original.timestamp"  # epoch milliseconds
RETRY_CONSUMER_GROUP = "retry.consumer.group"  # the group that failed (and the only one reading the topic)
RETRY_ATTEMPTS = "retry.attempts"  # attempts so far, in place and in every tier
RETRY_ROOT_EXCEPTION_TYPE = "retry.root.exception.type"  # innermost cause of the first failure
RETRY_ROOT_EXCEPTION_MESSAGE = "retry.root.exception.message"
RETRY_HISTORY = "retry.history"  # JSON list, see history_entry()

RETRY_HEADERS = frozenset(
    {
        RETRY_TIER,
        RETRY_DUE_AT,
        RETRY_ORIGINAL_TOPIC,
        RETRY_ORIGINAL_PARTITION,
        RETRY_ORIGINAL_OFFSET,
        RETRY_ORIGINAL_TIMESTAMP,
        RETRY_CONSUMER_GROUP,
        RETRY_ATTEMPTS,
        RETRY_ROOT_EXCEPTION_TYPE,
        RETRY_ROOT_EXCEPTION_MESSAGE,
        RETRY_HISTORY,
    }
)

HISTORY_MAX_ENTRIES = 12  # the first failure and the latest ones
HISTORY_MAX_BYTES = 4096
_MESSAGE_CHARS = 300
_ROOT_MESSAGE_CHARS = 1000


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception of ``error``'s chain (``raise ... from``, or raised while handling)."""
    seen = {id(error)}
    while True:
        cause = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
        if cause is None or id(cause) in seen:
            return error
        seen.add(id(cause))
        error = cause


def history_entry(tier: int, attempts: int, failed_at_ms: int, error_type: str, message: str) -> dict[str, Any]:
    """One failure: the tier it happened in (0: the source topic), attempts made there, when, and what."""
    return {"tier": tier, "attempts": attempts, "failed_at": failed_at_ms, "type": error_type,
            "message": message[:_MESSAGE_CHARS]}  # fmt: skip


def bounded_history(entries: Sequence[dict[str, Any]]) -> bytes:
    """``entries`` as JSON, keeping the first and the latest ones within the entry and byte bounds.

    Dropped entries are counted in one ``{"omitted": n}`` entry after the first, so a reader knows.
    """
    kept = [entry for entry in entries if "omitted" not in entry]
    omitted = sum(int(entry["omitted"]) for entry in entries if "omitted" in entry)
    while True:
        if len(kept) > HISTORY_MAX_ENTRIES:
            drop = len(kept) - HISTORY_MAX_ENTRIES
        else:
            encoded = json.dumps(_with_gap(kept, omitted), separators=(",", ":")).encode()
            if len(encoded) <= HISTORY_MAX_BYTES or len(kept) <= 2:
                return encoded[:HISTORY_MAX_BYTES]
            drop = 1
        del kept[1 : 1 + drop]
        omitted += drop


def _with_gap(kept: list[dict[str, Any]], omitted: int) -> list[dict[str, Any]]:
    if not omitted or not kept:
        return kept
    return [kept[0], {"omitted": omitted}, *kept[1:]]


def parse_history(raw: bytes | str | None) -> list[dict[str, Any]]:
    """The entries of a ``retry.history`` header (with its ``omitted`` marker, if any); [] when absent or unreadable."""
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(value, list):
        return []
    return [entry for entry in value if isinstance(entry, dict)]


def header_text(headers: Iterable[tuple[str, bytes | None]], name: str) -> str | None:
    """The last header ``name`` as text, or None."""
    found: bytes | None = None
    for key, value in headers:
        if key == name:
            found = value
    return None if found is None else found.decode("utf-8", "replace")
