"""Names of the headers and topics the dead-letter queue uses; documented in ``schemas/dlq-headers.md``.

Every dead-lettered record keeps its original key, value and headers and gains the ``dlq.*`` headers below
as UTF-8 strings; its copy is stamped with the time it was dead-lettered (``dlq.original.timestamp`` keeps the
source record's). ``neotool-dlq replay`` strips the error headers again, counts replays, names the one group
the copy is for (unless asked to reach every group), and stamps the copy with the time of the replay.
"""

from __future__ import annotations

from enum import StrEnum

from neotool_common.deadletter.retry_headers import RETRY_HEADERS

__all__ = [
    "DLQ_ATTEMPTS",
    "DLQ_CONSUMER_GROUP",
    "DLQ_ERROR_HEADERS",
    "DLQ_EXCEPTION_MESSAGE",
    "DLQ_EXCEPTION_STACKTRACE",
    "DLQ_EXCEPTION_TYPE",
    "DLQ_FAILED_AT",
    "DLQ_ORIGINAL_OFFSET",
    "DLQ_ORIGINAL_PARTITION",
    "DLQ_ORIGINAL_TIMESTAMP",
    "DLQ_ORIGINAL_TOPIC",
    "DLQ_PATH",
    "DLQ_REASON",
    "DLQ_REPLAY_COUNT",
    "DLQ_REPLAY_GROUP",
    "DLQ_SUFFIX",
    "PARKED_SUFFIX",
    "REPLAY_MANAGED_HEADERS",
    "DlqReason",
    "dlq_topic_for",
    "is_dlq_topic",
]

DLQ_SUFFIX = ".dlq"
PARKED_SUFFIX = ".parked"

DLQ_ORIGINAL_TOPIC = "dlq.original.topic"
DLQ_ORIGINAL_PARTITION = "dlq.original.partition"
DLQ_ORIGINAL_OFFSET = "dlq.original.offset"
DLQ_ORIGINAL_TIMESTAMP = "dlq.original.timestamp"  # epoch milliseconds
DLQ_CONSUMER_GROUP = "dlq.consumer.group"
DLQ_REASON = "dlq.reason"  # one of DlqReason
DLQ_PATH = "dlq.path"  # JSON path of the failing value, for decode/validation/poison
DLQ_EXCEPTION_TYPE = "dlq.exception.type"  # qualified class name
DLQ_EXCEPTION_MESSAGE = "dlq.exception.message"
DLQ_EXCEPTION_STACKTRACE = "dlq.exception.stacktrace"  # bounded size
DLQ_ATTEMPTS = "dlq.attempts"
DLQ_FAILED_AT = "dlq.failed_at"  # ISO 8601, UTC
DLQ_REPLAY_COUNT = "dlq.replay.count"  # kept across replays; not an error header
# The only consumer group whose runners process a replayed copy; runners of other groups commit past it.
# Absent: every group reading the topic processes it. Kept in the DLQ copy like the count, set anew by each replay.
DLQ_REPLAY_GROUP = "dlq.replay.group"

# Headers that describe one failure; a replay removes them so the record looks as it did originally.
DLQ_ERROR_HEADERS = frozenset(
    {
        DLQ_ORIGINAL_TOPIC,
        DLQ_ORIGINAL_PARTITION,
        DLQ_ORIGINAL_OFFSET,
        DLQ_ORIGINAL_TIMESTAMP,
        DLQ_CONSUMER_GROUP,
        DLQ_REASON,
        DLQ_PATH,
        DLQ_EXCEPTION_TYPE,
        DLQ_EXCEPTION_MESSAGE,
        DLQ_EXCEPTION_STACKTRACE,
        DLQ_ATTEMPTS,
        DLQ_FAILED_AT,
    }
)

# Headers a replay sets itself: the old values are removed before the new ones are added, so they never pile up.
# The retry.* headers of a record that went through retry tiers too: a replay through the group's retry topic
# writes them afresh, and one to the source topic starts the record's retries over.
REPLAY_MANAGED_HEADERS = DLQ_ERROR_HEADERS | RETRY_HEADERS | {DLQ_REPLAY_COUNT, DLQ_REPLAY_GROUP}


class DlqReason(StrEnum):
    """Why a record was dead-lettered (the ``dlq.reason`` header and the ``reason`` metric label)."""

    DECODE = "decode"  # not strict UTF-8 JSON
    VALIDATION = "validation"  # breaks the envelope or payload schema
    POISON = "poison"  # process() raised PoisonMessageError
    RETRIES_EXHAUSTED = "retries_exhausted"  # process() kept raising until the attempts ran out


def dlq_topic_for(topic: str) -> str:
    """The dead-letter topic of ``topic`` (platform standard §4.1: append ``.dlq``)."""
    return topic + DLQ_SUFFIX


def is_dlq_topic(topic: str) -> bool:
    return topic.endswith(DLQ_SUFFIX)
