"""Trace ids from W3C ``traceparent`` headers, for the ``trace_id`` of a record's log events."""

from __future__ import annotations

import re

__all__ = ["trace_id_from_traceparent"]

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?", re.DOTALL)


def trace_id_from_traceparent(value: bytes | str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` header value, or ``None`` if it is absent or malformed.

    ``00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>`` in lower case; all-zero ids and version ``ff``
    are invalid; a version above ``00`` may carry further ``-``-separated fields, version ``00`` may not.
    """
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    if value is None:
        return None
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace_id, parent_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id
