"""Every ``__all__`` of the DLQ tools resolves, and the package re-exports what the CLI builds on."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

from neotool_common import dlqtool as dlq_tools

MODULES = [
    "neotool_common.cli.dlq",
    "neotool_common.cli.dlq_args",
    "neotool_common.cli.dlq_options",
    "neotool_common.cli.dlq_inspect",
    "neotool_common.cli.dlq_replay",
] + [f"neotool_common.dlqtool.{info.name}" for info in pkgutil.iter_modules(dlq_tools.__path__)]


@pytest.mark.parametrize("name", ["neotool_common.dlqtool", *MODULES])
def test_all_names_resolve(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__, f"{name} declares its public names"
    assert [n for n in module.__all__ if not hasattr(module, n)] == []


def test_the_package_exports_the_replay_and_inspection_entry_points() -> None:
    for name in ("DlqCluster", "RecordFilter", "ReplayPolicy", "Replay", "plan_replay", "scan", "fetch_record"):
        assert name in dlq_tools.__all__


def test_the_console_script_points_at_main() -> None:
    from importlib.metadata import entry_points  # noqa: PLC0415 - only this test needs it

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "neotool-dlq"]
    assert script.value == "neotool_common.cli.dlq:main"
    assert script.load() is importlib.import_module("neotool_common.cli.dlq").main
