"""Which build of the record fast path runs: the compiled one when it is installed and current, else ``fast.py``.

``scripts/build_native.py`` compiles :mod:`neotool_common.records.fast` with mypyc into
``neotool_common.records._fast_native``, stamped with the SHA-256 of the source it was built from. The compiled
build is the same code, so it decides exactly as the interpreted one does (``tests/unit/test_native_fast_path.py``
holds them to each other); it only runs the glue between msgspec's calls in C. It is used only while its stamp
matches ``fast.py`` on disk: a build older than its source is never run.

``RECORD_DECODER`` chooses: ``auto`` (the default: compiled when current, else interpreted), ``compiled`` (refuse to
start without a current compiled build: an image built without it fails at once instead of running slower) or
``interpreted``.
"""

from __future__ import annotations

import hashlib
import importlib
from functools import cache
from pathlib import Path

from neotool_common.errors import ConfigurationError
from neotool_common.records import fast

__all__ = ["CHOICES", "SETTING", "compiled_status", "fast_envelope_type"]

SETTING = "RECORD_DECODER"
CHOICES = ("auto", "compiled", "interpreted")
COMPILED_MODULE = "neotool_common.records._fast_native"


@cache
def compiled_status() -> tuple[type[fast.FastEnvelope] | None, str]:
    """The compiled ``FastEnvelope``, or None and why not (worded for the startup log)."""
    try:
        module = importlib.import_module(COMPILED_MODULE)
    except ImportError:
        return None, "no compiled build installed (scripts/build_native.py)"
    try:
        source = Path(fast.__file__).read_bytes()
    except OSError as exc:
        return None, f"cannot read fast.py to check the compiled build against it: {exc}"
    if getattr(module, "SOURCE_DIGEST", None) != hashlib.sha256(source).hexdigest():
        return None, "the compiled build is older than fast.py (scripts/build_native.py builds it again)"
    envelope: type[fast.FastEnvelope] = module.FastEnvelope
    return envelope, "compiled"


def fast_envelope_type(choice: str = "auto") -> tuple[type[fast.FastEnvelope], str]:
    """The ``FastEnvelope`` class for ``choice`` (one of :data:`CHOICES`), and which build it is.

    :class:`ConfigurationError` naming ``RECORD_DECODER`` for an unknown choice, or ``compiled`` without a
    current compiled build.
    """
    if choice not in CHOICES:
        raise ConfigurationError(SETTING, f"must be one of {', '.join(CHOICES)}, not {choice!r}")
    if choice == "interpreted":
        return fast.FastEnvelope, "interpreted"
    compiled, why = compiled_status()
    if compiled is not None:
        return compiled, "compiled"
    if choice == "compiled":
        raise ConfigurationError(SETTING, f"compiled, but {why}")
    return fast.FastEnvelope, f"interpreted: {why}"
