"""format_trace: the text of a run of frames is remembered, never the exception's own line, and never stale."""

from __future__ import annotations

import re
import sys
import traceback
import types

import pytest

from neotool_common.deadletter import trace
from neotool_common.deadletter.trace import format_trace

_CARETS = re.compile(r"^\s*[\^~]+\s*$")


def python_prints(error: BaseException) -> str:
    """What Python prints for ``error`` (no cause), less the lines of column carets."""
    return "".join(line for line in traceback.format_exception(error) if not _CARETS.match(line))


def fails(message: str, second_site: bool = False) -> BaseException:
    def inner() -> None:
        if second_site:
            raise ValueError(message)
        raise KeyError(message)

    try:
        inner()
    except (KeyError, ValueError) as exc:
        return exc
    raise AssertionError("inner() raised nothing")


def test_a_trace_reads_as_python_prints_it_the_first_time_and_when_its_frames_are_remembered() -> None:
    first, again = fails("record 1"), fails("record 2")
    assert format_trace(first) == python_prints(first)
    assert format_trace(again) == python_prints(again), "the remembered frames, with this error's own line"
    assert format_trace(again).endswith("KeyError: 'record 2'\n")


def test_the_same_function_failing_at_another_line_is_another_trace() -> None:
    at_one, at_other = fails("x"), fails("x", second_site=True)
    format_trace(at_one)
    assert format_trace(at_other) == python_prints(at_other)
    assert "raise ValueError(message)" in format_trace(at_other)
    assert "raise ValueError(message)" not in format_trace(at_one)


def test_the_memory_of_frames_is_bounded() -> None:
    for index in range(trace._REMEMBERED + 10):
        namespace: dict[str, object] = {}
        exec(compile(f"def f():\n    raise OSError({index})\n", f"<generated {index}>", "exec"), namespace)
        with pytest.raises(OSError, match=str(index)) as raised:
            namespace["f"]()  # type: ignore[operator]
        text = format_trace(raised.value)
        assert f'"<generated {index}>"' in text, "this code's frame, never one whose id was reused"
        assert text.endswith(f"OSError: {index}\n")
    assert 0 < len(trace._frames_text) <= trace._REMEMBERED


def test_a_traceback_built_by_hand_with_another_line_at_the_same_instruction_is_another_trace() -> None:
    frame = sys._getframe()
    here = frame.f_lineno
    at_one = ValueError("x").with_traceback(types.TracebackType(None, frame, 0, here - 2))
    at_other = ValueError("x").with_traceback(types.TracebackType(None, frame, 0, here - 1))
    assert f"line {here - 2}," in format_trace(at_one)
    assert f"line {here - 1}," in format_trace(at_other)


def test_a_run_of_frames_longer_than_is_kept_is_formatted_each_time() -> None:
    def deep(level: int) -> None:
        if level == 0:
            raise RecursionError("deep")
        deep(level - 1)

    trace._frames_text.clear()
    with pytest.raises(RecursionError) as raised:
        deep(trace._LONGEST_KEPT + 5)
    text = format_trace(raised.value)
    assert text.count(", in deep\n") == trace._LONGEST_KEPT + 6, "every frame, as before"
    assert text.endswith("RecursionError: deep\n")
    assert trace._frames_text == {}
