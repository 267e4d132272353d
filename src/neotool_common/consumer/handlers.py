"""The hooks a consumer class defines, as the engine needs them: which ones it overrides, and whether async."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from neotool_common.records.message import Message

__all__ = ["Handlers", "one_by_one"]


@dataclass(frozen=True)
class Handlers:
    """The hooks a consumer class defines, as the engine needs them."""

    process: Callable[[Message], Any]
    process_batch: Callable[[list[Message]], Any] | None  # None unless the class overrides process_batch()
    has_process: bool
    is_async: bool
    redact: Callable[[str], str] = str  # the consumer's redact_failure(), for exception text bound for the DLQ

    @classmethod
    def of(cls, runner: Any, base: type) -> Handlers:
        """The hooks ``runner`` overrides of ``base`` (the class it was derived from)."""
        kind = type(runner)
        has_batch = kind.process_batch is not base.process_batch  # type: ignore[attr-defined]
        has_process = kind.process is not base.process  # type: ignore[attr-defined]
        is_async = _is_async(kind, has_process, has_batch)
        batch = runner.process_batch if has_batch else None
        return cls(runner.process, batch, has_process, is_async, getattr(runner, "redact_failure", str))


def _is_async(kind: type, has_process: bool, has_batch: bool) -> bool:
    process_async = has_process and inspect.iscoroutinefunction(kind.process)  # type: ignore[attr-defined]
    batch_async = has_batch and inspect.iscoroutinefunction(kind.process_batch)  # type: ignore[attr-defined]
    if has_process and has_batch and process_async != batch_async:
        raise TypeError(f"{kind.__name__}: process() and process_batch() must both be async, or neither")
    return process_async or batch_async


def one_by_one(process_batch: Callable[[list[Message]], Any], is_async: bool) -> Callable[[Message], Any]:
    if is_async:

        async def one_async(message: Message) -> None:
            await process_batch([message])

        return one_async

    def one(message: Message) -> None:
        process_batch([message])

    return one
