"""neotool-new: names checked (one line, exit 2), nothing overwritten, and exactly the files of §4.5 written."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from neotool_common.cli.new import main
from neotool_common.scaffold.names import ConsumerNames
from neotool_common.scaffold.render import neotool_version, planned_files

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_FILES = [
    ".dockerignore",
    ".gitignore",
    "Dockerfile",
    "README.md",
    "docs/runbook.md",
    "docs/workflow-template.md",
    "migrations/V1_1__create_schema.sql",
    "migrations/V1_2__create_records.sql",
    "migrations-sqlite/V1_1__create_schema.sql",
    "migrations-sqlite/V1_2__create_records.sql",
    "pyproject.toml",
    "pytest.ini",
    "pyway.conf",
    "src/people_loader/__init__.py",
    "src/people_loader/flows/__init__.py",
    "src/people_loader/flows/consumer.py",
    "src/people_loader/py.typed",
    "src/people_loader/schemas/payload.v1.json",
    "src/people_loader/tasks/__init__.py",
    "src/people_loader/tasks/config.py",
    "src/people_loader/tasks/message.py",
    "src/people_loader/tasks/migrations.py",
    "src/people_loader/tasks/processor.py",
    "src/people_loader/tasks/samples.py",
    "src/people_loader/tasks/store.py",
    "tests/conftest.py",
    "tests/test_consumer.py",
    "tests/test_postgres.py",
    "tests/test_processor.py",
]


def test_writes_exactly_the_standard_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "people-loader"
    assert main(["consumer", "people-loader", "--topic", "people.ingest.v1", "--dir", str(target)]) == 0
    written = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert written == sorted(EXPECTED_FILES)
    out = capsys.readouterr().out
    assert out.startswith(f"Wrote {len(EXPECTED_FILES)} files of people-loader to {target}:")


def test_the_package_is_pinned_named_and_free_of_the_examples_domain() -> None:
    files = planned_files(ConsumerNames.of("people-loader", "people.ingest.v1", "people-loader-v2"))
    project = tomllib.loads(files[next(p for p in files if str(p) == "pyproject.toml")])["project"]
    assert project["name"] == "people-loader"
    assert project["dependencies"][0] == f"neotool-common=={neotool_version()}"
    assert project["scripts"] == {"people-loader-consumer": "people_loader.flows.consumer:main"}
    text = "\n".join(files.values())
    assert re.search(r"institution|routing|financial|fed_|aba\b", text, re.IGNORECASE) is None
    assert "{{" not in text
    consumer = files[next(p for p in files if p.name == "consumer.py")]
    assert 'group_id = "people-loader-v2"' in consumer
    assert "class PeopleLoaderConsumer(KafkaConsumerRunner):" in consumer


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["People_Loader", "--topic", "people.ingest.v1"], "NAME: 'People_Loader' must be lowercase words"),
        (["people-loader-consumer", "--topic", "people.ingest.v1"], "NAME: 'people-loader-consumer': leave out"),
        (["json", "--topic", "people.ingest.v1"], "NAME: 'json' would make package 'json', which is taken"),
        (["people-loader", "--topic", "people.ingest"], "--topic: 'people.ingest' must be {domain}.{entity}.v{N}"),
        (["people-loader", "--topic", "people.ingest.v1.dlq"], "--topic: 'people.ingest.v1.dlq' must be"),
        (["people-loader", "--topic", "a.b.v1", "--group", "a b"], "--group: 'a b' may hold letters"),
    ],
)
def test_a_bad_name_is_one_line_and_exit_2(
    argv: list[str], error: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["consumer", *argv, "--dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"neotool-new: {error}")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_an_existing_directory_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "README.md").write_text("mine")
    assert main(["consumer", "people-loader", "--topic", "people.ingest.v1", "--dir", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err
        == f"neotool-new: --dir: {tmp_path} already exists; choose a new directory (nothing written)\n"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["README.md"]
    assert (tmp_path / "README.md").read_text() == "mine"


def test_the_directory_defaults_to_the_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["consumer", "people-loader", "--topic", "people.ingest.v1"]) == 0
    assert (tmp_path / "people-loader" / "pyproject.toml").is_file()


def test_usage_errors_exit_2() -> None:
    assert main(["consumer", "people-loader"]) == 2  # --topic is required
    assert main([]) == 2


def test_the_generated_code_passes_this_projects_lint(tmp_path: Path) -> None:
    target = tmp_path / "people-loader"
    assert main(["consumer", "people-loader", "--topic", "people.ingest.v1", "--dir", str(target)]) == 0
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is installed with the dev extra")
    config = ["--config", str(ROOT / "pyproject.toml"), "--config", 'src=["src", "tests"]']
    config += ["--config", 'lint.per-file-ignores={"tests/**" = ["S"]}']
    for command in (["check", *config, "."], ["format", "--check", *config, "."]):
        result = subprocess.run([str(ruff), *command], cwd=target, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
