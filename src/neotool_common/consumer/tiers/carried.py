"""What a retry copy carries from hop to hop: the source record's coordinates, the root cause, the history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neotool_common.consumer.raw import qualified
from neotool_common.deadletter import retry_headers as rh
from neotool_common.deadletter.publisher import Headers

__all__ = ["Carried"]


def _int(text: str | None, default: int) -> int:
    try:
        return default if text is None else int(text)
    except ValueError:
        return default


@dataclass
class Carried:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    attempts: int = 0
    root_type: str = ""
    root_message: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def read(cls, headers: Headers, topic: str, partition: int, offset: int, timestamp_ms: int | None) -> Carried:
        """From a retry copy's headers; the given coordinates stand in for any that are missing."""

        def text(name: str) -> str | None:
            return rh.header_text(headers, name)

        stamp = text(rh.RETRY_ORIGINAL_TIMESTAMP)
        return cls(
            text(rh.RETRY_ORIGINAL_TOPIC) or topic,
            _int(text(rh.RETRY_ORIGINAL_PARTITION), partition),
            _int(text(rh.RETRY_ORIGINAL_OFFSET), offset),
            _int(stamp, 0) if stamp else timestamp_ms,
            _int(text(rh.RETRY_ATTEMPTS), 0),
            text(rh.RETRY_ROOT_EXCEPTION_TYPE) or "",
            text(rh.RETRY_ROOT_EXCEPTION_MESSAGE) or "",
            rh.parse_history(text(rh.RETRY_HISTORY)),
        )

    def failed(self, tier: int, attempts: int, now_ms: int, error: BaseException, redact: Any) -> None:
        """One more failure: ``attempts`` made in ``tier`` (0: the source topic)."""
        self.attempts += attempts
        if not self.root_type:
            root = rh.root_cause(error)
            self.root_type, self.root_message = qualified(root), redact(str(root))[:1000]
        self.history.append(rh.history_entry(tier, attempts, now_ms, qualified(error), redact(str(error))))

    def headers(self, kept: Headers, tier: int | None, due_ms: int | None, group: str) -> Headers:
        """``kept`` without any ``retry.*`` header, then this copy's: replaced at every hop, never appended."""
        fresh = {
            rh.RETRY_ORIGINAL_TOPIC: self.topic,
            rh.RETRY_ORIGINAL_PARTITION: str(self.partition),
            rh.RETRY_ORIGINAL_OFFSET: str(self.offset),
            rh.RETRY_ORIGINAL_TIMESTAMP: "" if self.timestamp_ms is None else str(self.timestamp_ms),
            rh.RETRY_CONSUMER_GROUP: group,
            rh.RETRY_ATTEMPTS: str(self.attempts),
            rh.RETRY_ROOT_EXCEPTION_TYPE: self.root_type,
            rh.RETRY_ROOT_EXCEPTION_MESSAGE: self.root_message,
        }
        if tier is not None and due_ms is not None:
            fresh[rh.RETRY_TIER] = str(tier)
            fresh[rh.RETRY_DUE_AT] = str(due_ms)
        out: Headers = [(k, v) for k, v in kept if k not in rh.RETRY_HEADERS]
        out += [(k, v.encode("utf-8", "replace")) for k, v in fresh.items()]
        out.append((rh.RETRY_HISTORY, rh.bounded_history(self.history)))
        return out
