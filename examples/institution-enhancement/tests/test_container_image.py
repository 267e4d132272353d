"""The container images, without a Docker engine: hadolint on both Dockerfiles, and the root Dockerfile's
``pip install`` steps replayed into a fresh virtualenv whose entry point must then start and refuse to run
without ``KAFKA_BROKERS`` (exit 2, one line on stderr)."""

from __future__ import annotations

import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from conftest import EXAMPLE_ROOT, REPO_ROOT

DOCKERFILES = [REPO_ROOT / "Dockerfile", EXAMPLE_ROOT / "Dockerfile"]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped.removesuffix("\\").strip() + " "
        if not stripped.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run(
        [str(hadolint), "--no-color", str(dockerfile)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_the_image_runs_the_consumer_as_a_non_root_user(dockerfile: Path) -> None:
    steps = instructions(dockerfile)
    kinds = [kind for kind, _ in steps]
    assert kinds[0] == "FROM"
    users = [args for kind, args in steps if kind == "USER"]
    assert users, "a USER instruction"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert json.loads(dict(steps)["ENTRYPOINT"]) == ["institution-enhancement-consumer"]
    installs = [args for kind, args in steps if kind == "RUN" and "pip install" in args]
    assert len(installs) == 2
    assert "neotool-common" in installs[0], "neotool-common is installed first"
    assert "institution-enhancement" in installs[1]
    assert kinds.index("USER") > max(i for i, (kind, args) in enumerate(steps) if "pip install" in args)


class ImageReplay:
    """Plays the COPY and ``RUN pip install`` steps of a Dockerfile against a directory standing for ``/``."""

    def __init__(self, context: Path, root: Path, python: Path) -> None:
        self.context = context
        self.root = root
        self.python = python
        ignore_file = context / ".dockerignore"
        lines = ignore_file.read_text().splitlines() if ignore_file.exists() else []
        self.ignored = [line.strip().removeprefix("**/") for line in lines if line.strip() and line[0] != "#"]

    def inside(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def copy(self, arguments: str) -> None:
        *sources, destination = shlex.split(arguments)
        assert not any(s.startswith("--") for s in sources), "the replay handles plain COPY only"
        for source in sources:
            origin = self.context / source
            target = self.inside(destination)
            if origin.is_dir():
                shutil.copytree(origin, target, symlinks=True, ignore=self._ignore, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)

    def _ignore(self, _directory: str, names: list[str]) -> set[str]:
        return {n for n in names if any(fnmatch.fnmatch(n, pattern) for pattern in self.ignored)}

    def run(self, arguments: str) -> None:
        for command in arguments.split("&&"):
            words = shlex.split(command)
            if words[:2] != ["pip", "install"]:
                continue  # users, directories, clean-up: nothing the installed result depends on
            # The image builds without a cache; the replay uses pip's cache to stay fast.
            packages = [str(self.inside(w)) if w.startswith("/") else w for w in words[2:] if w != "--no-cache-dir"]
            subprocess.run(
                [sys.executable, "-m", "pip", "--python", str(self.python), "install", "--quiet", *packages],
                check=True,
                timeout=600,
            )


@pytest.mark.slow
def test_the_root_dockerfile_installs_a_working_entry_point(tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(environment)
    python = environment / "bin" / "python"
    replay = ImageReplay(REPO_ROOT, tmp_path / "root", python)
    entrypoint: list[str] = []
    for kind, arguments in instructions(REPO_ROOT / "Dockerfile"):
        if kind == "COPY":
            replay.copy(arguments)
        elif kind == "RUN":
            replay.run(arguments)
        elif kind == "ENTRYPOINT":
            entrypoint = json.loads(arguments)

    packaged = subprocess.run(
        [
            str(python),
            "-c",
            "from importlib.resources import files as f;"
            "print(f('neotool_common').joinpath('schemas', 'envelope.v1.json').is_file(),"
            "f('institution_enhancement').joinpath('schemas', 'institution.v1.json').is_file(),"
            "sorted(p.name for p in f('institution_enhancement').joinpath('migrations', 'postgres').iterdir()))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert packaged.stdout.strip() == "True True ['V1_1__create_schema.sql', 'V1_2__create_institutions.sql']"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DATABASE_"))}
    started = subprocess.run(
        [str(environment / "bin" / entrypoint[0]), *entrypoint[1:]],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert started.returncode == 2, started.stdout + started.stderr
    assert started.stdout == ""
    lines = started.stderr.splitlines()
    assert len(lines) == 1, started.stderr
    assert "KAFKA_BROKERS" in lines[0]
    assert "is required" in lines[0]
