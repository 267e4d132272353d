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
from typing import Any

__all__ = ["STAGES", "command", "stage_budget", "summarize"]

# The stages of the per-record path, for the budget (:func:`stage_budget`); each sample goes to the innermost
# frame that names one. Time in C (librdkafka calls, msgspec, regular expressions) is the calling function's.
STAGES = ("client", "decode", "validate", "bookkeeping", "metrics", "process()")
_VALIDATE_FUNCTIONS = ("FastEnvelope._moment", "validate", "_validate_model", "_parse_ingested_at")

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


# (stage, function name prefixes, file markers), tried in order on each frame from the innermost outwards.
_RULES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("validate", _VALIDATE_FUNCTIONS, ("fastjsonschema", "pydantic")),
    ("decode", (), ("records/fast.py", "records/decoding.py", "msgspec", "orjson")),
    # The compiled fast path has no Python frames: its time is the reader's own, which calls it (and builds the
    # Message, a fraction of it).
    ("decode", ("EnvelopeReader.read",), ()),
    ("validate", (), ("records/validation.py", "jsonschema")),
    ("metrics", (), ("observability/metrics.py", "prometheus_client")),
    ("process()", ("BenchConsumer.process", "GroupConsumer.process"), ()),
    ("client", (), ("consumer/raw.py",)),  # the record's headers
    ("bookkeeping", (), ("neotool_common/consumer", "records/message.py", "<string>")),
)


def _stage(functions: list[str]) -> str:
    """The stage of one stack (see :data:`STAGES`); consume() is the poll loop's own time."""
    if functions and functions[-1].startswith("Engine._loop "):
        return "client"
    for function in reversed(functions):
        name, _, where = function.partition(" (")
        for stage, names, files in _RULES:
            if (names and name.startswith(names)) or any(marker in where for marker in files):
                return stage
    return "bookkeeping"


def stage_budget(raw: Path, focus: str, cpu_us_per_record: float | None, client_threads_us: float | None) -> dict:
    """Microseconds per record of each stage: the shares of the samples of stacks through ``focus``, applied to
    the process's CPU per record less ``client_threads_us`` (librdkafka's own threads, which py-spy does not
    sample: the raw loop's CPU per record in the same run). Shares, not sample counts, because on a loaded
    machine a sampled thread may be waiting for a core.
    """
    spent: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        functions = [_function(f) for f in stack.split(";")]
        if focus and not any(f.startswith(focus + " ") for f in functions):
            continue
        spent[_stage(functions)] += int(count_text)
    total = sum(spent.values())
    budget: dict[str, Any] = {"samples": total, "cpu_us_per_record": cpu_us_per_record}
    threads = min(client_threads_us or 0.0, cpu_us_per_record or 0.0)
    budget["client threads"] = threads if client_threads_us is not None else None
    python = (cpu_us_per_record or 0.0) - threads
    for stage in STAGES:
        budget[stage] = python * spent[stage] / total if total and cpu_us_per_record else None
    return budget
