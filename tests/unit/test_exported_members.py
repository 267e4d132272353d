"""The public surface is exactly what ``__all__`` says, and every name in it resolves."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import neotool_common

PACKAGE = Path(neotool_common.__file__).parent
# Every module of the package (a subpackage's __init__ only describes it): each __all__ names only what it
# defines or re-exports.
MODULES = sorted(
    ".".join(("neotool_common", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
    for path in PACKAGE.rglob("*.py")
    if path.name not in ("__main__.py", "__init__.py") or path.parent == PACKAGE
)


@pytest.mark.parametrize("name", MODULES)
def test_all_names_resolve(name: str) -> None:
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == []


def test_package_exports_every_public_name_it_imports() -> None:
    public = {n for n in vars(neotool_common) if not n.startswith("_")}
    submodules = {n for n in public if isinstance(getattr(neotool_common, n), type(neotool_common))}
    assert set(neotool_common.__all__) == public - submodules


def test_runner_is_importable_from_the_standard_path() -> None:
    from neotool_common.consumer_base import KafkaConsumerRunner  # noqa: PLC0415 - the path is the contract

    assert KafkaConsumerRunner is neotool_common.KafkaConsumerRunner
