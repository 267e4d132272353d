"""Headers as callers give them (a mapping or pairs, ``str`` or ``bytes``) turned into what librdkafka takes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["Header", "HeaderInput", "as_bytes", "normalize_headers"]

Header = tuple[str, bytes | None]
HeaderInput = Mapping[str, str | bytes | None] | Iterable[tuple[str, str | bytes | None]]


def as_bytes(data: str | bytes | None) -> bytes | None:
    return data.encode() if isinstance(data, str) else data


def normalize_headers(headers: HeaderInput | None) -> tuple[Header, ...]:
    if headers is None:
        return ()
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((str(name), as_bytes(value)) for name, value in items)
