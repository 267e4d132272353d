"""The stack trace a dead-lettered record carries in ``dlq.exception.stacktrace``.

It reads as Python prints a traceback, causes included, without the column carets. Python 3.11 finds the
carets by parsing each frame's source line, which made one dead letter cost more than a thousand processed
records; the frames themselves are what the on-call engineer reads. Nor is ``traceback.extract_tb`` used: it
also computes every frame's column positions and checks each source file on disk (``linecache.checkcache``, a
``stat`` per file) for every trace.

Poison records fail the same way over and over: the same frames, at the same lines. So the text of a run of
frames is kept by its code objects and line numbers, and a trace seen before costs a walk of its frames and
one lookup; only the exception's own line is written anew. The memory is bounded: it starts over once it holds
``_REMEMBERED`` runs.
"""

from __future__ import annotations

import linecache
from types import CodeType, FrameType, TracebackType

__all__ = ["format_trace"]

_REMEMBERED = 512
# A run longer than this (a RecursionError's, say) is formatted each time, not kept: a few hundred such texts would
# weigh more than the runner's whole prefetch queue, and only the trace's last 8,000 characters are sent anyway.
_LONGEST_KEPT = 64
# (id of each frame's code object, the instruction it was at, its line) -> (the code objects, kept alive so that no
# id is reused; the text). By id: hashing a code object hashes its bytecode and constants. The line as well as the
# instruction: a traceback built by hand (``types.TracebackType``, as libraries that rebuild tracebacks do) sets
# both, independently.
_frames_text: dict[tuple[int, ...], tuple[tuple[CodeType, ...], str]] = {}


def format_trace(error: BaseException) -> str:
    """``error``'s traceback and those of its causes, outermost cause first, as Python prints them."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames = _frames(current.__traceback__)
        kind = type(current)
        name = (
            kind.__qualname__
            if kind.__module__ in ("builtins", "__main__")
            else f"{kind.__module__}.{kind.__qualname__}"
        )
        header = "Traceback (most recent call last):\n" if frames else ""
        parts.append(f"{header}{frames}{name}: {current}\n")
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\nThe above exception was the cause of this one:\n\n".join(reversed(parts))


def _frames(tb: TracebackType | None) -> str:
    parts: list[int] = []
    walked: list[TracebackType] = []
    while tb is not None:
        parts += (id(tb.tb_frame.f_code), tb.tb_lasti, tb.tb_lineno)
        walked.append(tb)
        tb = tb.tb_next
    key = tuple(parts)
    known = _frames_text.get(key)
    if known is not None:
        return known[1]
    text = "".join(_frame(tb.tb_frame, tb.tb_lineno) for tb in walked)
    if len(walked) <= _LONGEST_KEPT:
        if len(_frames_text) >= _REMEMBERED:
            _frames_text.clear()
        _frames_text[key] = (tuple(tb.tb_frame.f_code for tb in walked), text)
    return text


def _frame(frame: FrameType, lineno: int) -> str:
    code = frame.f_code
    line = linecache.getline(code.co_filename, lineno, frame.f_globals).strip()
    return f'  File "{code.co_filename}", line {lineno}, in {code.co_name}\n' + (f"    {line}\n" if line else "")
