"""Which build of the record fast path runs: the compiled one when it is installed and current, else ``fast.py``.

``scripts/build_native.py`` compiles :mod:`neotool_common.records.fast` with mypyc into
``neotool_common.records._fast_native``, stamped with the SHA-256 of the sources it was built from. The compiled
build is the same code, so it decides exactly as the interpreted one does (``tests/unit/test_native_fast_path.py``
holds them to each other); it only runs the glue between msgspec's calls in C. It is used only while its stamp
matches the sources on disk (:data:`SOURCES`: ``fast.py`` and the two modules whose types it was compiled
against): a build from other sources than these is never used. Its module is imported to read the stamp.

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

__all__ = ["CHOICES", "SETTING", "SOURCES", "check_choice", "compiled_status", "fast_envelope_type", "source_digest"]

SETTING = "RECORD_DECODER"
CHOICES = ("auto", "compiled", "interpreted")
COMPILED_MODULE = "neotool_common.records._fast_native"


# What the compiled build is made from: fast.py and the modules of the package it imports (their types are compiled in).
SOURCES = ("fast.py", "decoding.py", "payload_struct.py")


def source_digest(directory: Path) -> str:
    """The SHA-256 over :data:`SOURCES` in ``directory``, each by name and content (what the build is stamped with)."""
    digest = hashlib.sha256()
    for name in SOURCES:
        text = (directory / name).read_bytes()
        digest.update(f"{name}:{len(text)}:".encode())
        digest.update(text)
    return digest.hexdigest()


@cache
def compiled_status() -> tuple[type[fast.FastEnvelope] | None, str]:
    """The compiled ``FastEnvelope``, or None and why not (worded for the start line)."""
    try:
        module = importlib.import_module(COMPILED_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != COMPILED_MODULE:
            return None, f"the compiled build does not load: {exc}"
        return None, "no compiled build installed (scripts/build_native.py)"
    except Exception as exc:  # noqa: BLE001 - a build for another interpreter, a missing library: not used
        return None, f"the compiled build does not load: {type(exc).__name__}: {exc}"
    try:
        digest = source_digest(Path(fast.__file__).parent)
    except OSError as exc:
        return None, f"cannot read the sources to check the compiled build against them: {exc}"
    if getattr(module, "SOURCE_DIGEST", None) != digest:
        sources = ", ".join(SOURCES)
        return None, f"the compiled build was made from other sources than {sources} (scripts/build_native.py)"
    envelope: type[fast.FastEnvelope] = module.FastEnvelope
    return envelope, "compiled"


def check_choice(choice: str) -> None:
    """:class:`ConfigurationError` naming ``RECORD_DECODER`` unless ``choice`` is one of :data:`CHOICES`."""
    if choice not in CHOICES:
        raise ConfigurationError(SETTING, f"must be one of {', '.join(CHOICES)}, not {choice!r}")


def fast_envelope_type(choice: str = "auto") -> tuple[type[fast.FastEnvelope], str]:
    """The ``FastEnvelope`` class for ``choice`` (one of :data:`CHOICES`), and which build it is.

    :class:`ConfigurationError` naming ``RECORD_DECODER`` for an unknown choice, or ``compiled`` without a
    current compiled build.
    """
    check_choice(choice)
    if choice == "interpreted":
        return fast.FastEnvelope, "interpreted"
    compiled, why = compiled_status()
    if compiled is not None:
        return compiled, "compiled"
    if choice == "compiled":
        raise ConfigurationError(SETTING, f"compiled, but {why}")
    return fast.FastEnvelope, f"interpreted: {why}"
