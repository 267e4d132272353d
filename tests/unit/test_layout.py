"""The layout stays readable: no module of the package passes 300 lines, and every package says what it holds."""

from __future__ import annotations

from pathlib import Path

import neotool_common

PACKAGE = Path(neotool_common.__file__).parent
MAX_LINES = 300


def test_no_module_passes_300_lines() -> None:
    sizes = {str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}


def test_every_package_docstring_says_what_lives_there() -> None:
    for init in PACKAGE.rglob("__init__.py"):
        text = init.read_text()
        assert text.startswith('"""'), init
        assert len(text.split('"""')[1].split()) >= 8, f"{init}: a sentence on what lives there"
