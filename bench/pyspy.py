"""Where a variant's Python thread spends its time: py-spy samples, summarised by function.

``py-spy record --format raw`` writes one line per distinct stack, ``frame;frame;... count``, each frame
``function (file:line)``. Self time goes to the innermost frame; inclusive time to every function on the stack
once. Native threads (librdkafka's) are not sampled, so the shares are of the Python thread's busy time; time in
C code (orjson, regular expressions, librdkafka calls) counts as self time of the Python function that called it.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from pathlib import Path

__all__ = ["command", "summarize"]

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def command(output: Path, rate: int = 500) -> list[str]:
    beside = Path(sys.executable).with_name("py-spy")
    executable = str(beside) if beside.exists() else shutil.which("py-spy") or "py-spy"
    return [executable, "record", "--format", "raw", "--rate", str(rate), "--output", str(output), "--"]


def _function(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['function']} ({path})"


def summarize(raw: Path, focus: str = "", top: int = 25) -> str:
    """Self and inclusive shares of the samples; with ``focus``, only of stacks through that function (e.g. the
    poll loop), which leaves out start-up, shutdown and other threads."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        functions = [_function(f) for f in stack.split(";")]
        if focus and not any(f.startswith(focus + " ") for f in functions):
            continue
        total += count
        own[functions[-1]] += count
        for function in set(functions):
            inclusive[function] += count
    if not total:
        return "no samples\n"
    scope = f"stacks through {focus}" if focus else "the Python thread(s)"
    lines = [f"{total} samples of {scope} (py-spy, {raw.name})", "", "self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"
