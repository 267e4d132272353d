"""Write a new consumer package from the templates: every file listed, every placeholder filled, nothing
overwritten.

Templates live in ``templates/`` (package data, in the wheel). A path's ``__package__`` becomes the Python package
name, a ``.tmpl`` suffix is dropped, and ``dot-`` starts a dotfile (``dot-dockerignore`` is ``.dockerignore``).
Placeholders are ``{{name}}``, ``{{package}}``, ``{{class}}``, ``{{topic}}``, ``{{group}}``, ``{{lock_id}}`` and
``{{neotool_version}}``; a template that leaves one unfilled is a bug of this package and raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from importlib import metadata
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import Final

from neotool_common.errors import ConfigurationError
from neotool_common.scaffold.names import ConsumerNames

__all__ = ["neotool_version", "placeholders", "planned_files", "write_consumer"]

_PLACEHOLDER: Final = re.compile(r"\{\{[a-z_]+\}\}")
_TEMPLATES: Final = "templates"


def neotool_version() -> str:
    """The installed neotool-common's version: the generated package pins exactly this one."""
    try:
        return metadata.version("neotool-common")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0.1.0"


def placeholders(names: ConsumerNames) -> dict[str, str]:
    return {
        "name": names.name,
        "package": names.package,
        "class": names.class_name,
        "topic": names.topic,
        "group": names.group,
        "lock_id": str(names.lock_id),
        "neotool_version": neotool_version(),
    }


def _templates(root: Traversable, prefix: PurePosixPath | None = None) -> Iterator[tuple[PurePosixPath, str]]:
    prefix = prefix or PurePosixPath()
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            yield from _templates(entry, prefix / entry.name)
        else:
            yield prefix / entry.name, entry.read_text(encoding="utf-8")


def _target(template: PurePosixPath, package: str) -> PurePosixPath:
    parts = [part.replace("__package__", package) for part in template.parts]
    parts = ["." + part.removeprefix("dot-") if part.startswith("dot-") else part for part in parts]
    return PurePosixPath(*parts[:-1], parts[-1].removesuffix(".tmpl"))


def _fill(text: str, values: Mapping[str, str], where: PurePosixPath) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = _PLACEHOLDER.search(text)
    if left is not None:
        raise RuntimeError(f"template {where} has an unknown placeholder {left.group()}")
    return text


def planned_files(names: ConsumerNames) -> dict[PurePosixPath, str]:
    """Every file of the new package, by path relative to its directory, with its content."""
    values = placeholders(names)
    root = files("neotool_common.scaffold") / _TEMPLATES
    return {_target(path, names.package): _fill(text, values, path) for path, text in _templates(root)}


def write_consumer(names: ConsumerNames, directory: Path) -> list[PurePosixPath]:
    """Write the package into ``directory``, which must not exist yet; returns the files written, sorted."""
    if directory.exists():
        raise ConfigurationError("--dir", f"{directory} already exists; choose a new directory (nothing written)")
    planned = planned_files(names)
    for relative, text in planned.items():
        path = directory.joinpath(*relative.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(planned)
