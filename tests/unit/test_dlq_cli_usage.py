"""Usage and configuration errors: exit 2 with one line on stderr, before any connection is tried."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from neotool_common.cli.dlq import main
from neotool_common.cli.dlq_options import invoked_as


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "neotool-dlq: the following arguments are required: command (see neotool-dlq --help)"),
        (["list"], "neotool-dlq list: the following arguments are required: DLQ_TOPIC (see neotool-dlq list --help)"),
        (["show", "t.dlq"], "neotool-dlq show: the following arguments are required: --offset"),
        (["list", "t.dlq", "--limit", "0"], "neotool-dlq list: argument --limit: '0' must be 1 or more"),
        (["list", "t.dlq", "--partition", "x"], "argument --partition: 'x' is not a whole number"),
        (["replay", "t.dlq", "--rate", "-1"], "argument --rate: '-1' must be more than 0"),
        (["replay", "t.dlq", "--dry"], "unrecognized arguments: --dry"),
        (["replay", "t.dlq", "--all-groups=yes"], "argument --all-groups: ignored explicit argument 'yes'"),
        (["list", "t.dlq", "--all-groups"], "unrecognized arguments: --all-groups"),
        (["purge", "t.dlq"], "argument command: invalid choice: 'purge'"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert expected in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["list", "t.dlq", "--reason", "oops"], "neotool-dlq: --reason: oops is not one of decode, validation, poison"),
        (["stats", "t.dlq", "--since", "soon"], "neotool-dlq: --since: 'soon' is neither a duration"),
        (["list", "t.dlq", "--offset-from", "9", "--offset-to", "3"], "neotool-dlq: --offset-from: 9 is after"),
        (["replay", "t.dlq", "--to", "orders.dlq"], "neotool-dlq: --to: refusing to replay into dead-letter topic"),
        (["replay", "t.dlq", "--to", "t.dlq.parked"], "neotool-dlq: --to: refusing to replay into dead-letter topic"),
        (["list", "t.dlq", "--brokers", "nohostport"], "neotool-dlq: KAFKA_BROKERS: 'nohostport' is not host:port"),
    ],
)
def test_invalid_settings_exit_2_with_one_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, capsys)

    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith(expected)


def test_brokers_are_required_from_the_option_or_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKA_BROKERS", raising=False)

    code, _, err = run(["list", "t.dlq"], capsys)

    assert code == 2
    assert err == "neotool-dlq: KAFKA_BROKERS: is required (host:port[,host:port...])\n"


def test_help_lists_every_command_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--help"], capsys)

    assert code == 0
    for command in ("list", "show", "stats", "replay"):
        assert command in out


def test_replay_help_documents_the_safety_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["replay", "--help"], capsys)

    assert code == 0
    for option in ("--dry-run", "--max-replays", "--no-park", "--from-beginning", "--group", "--rate", "--to"):
        assert option in out


def test_replay_help_says_what_each_choice_does_to_other_groups(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["replay", "--help"], capsys)
    text = " ".join(re.sub(r"-\n\s*", "-", out).split())  # argparse wraps lines at hyphens too

    assert code == 0
    assert "--all-groups let every consumer group reading the topic process the copies" in text
    assert "by default only the consumer group that dead-lettered it" in text
    assert "runners of other groups reading the same topic commit past the copy without processing it" in text
    assert "--to TOPIC changes the topic, not that scope" in text
    assert "--all-groups sends the copies without a scope: every group reading the topic processes them again" in text


def test_follow_up_commands_name_the_tool_as_it_was_run_when_path_does_not_find_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "argv", [".venv/bin/neotool-dlq", "list"])
    assert invoked_as() == ".venv/bin/neotool-dlq"
    monkeypatch.setattr(sys, "argv", ["/usr/lib/python3/pytest"])
    assert invoked_as() == "neotool-dlq"
    script = tmp_path / "neotool-dlq"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(script)])
    assert invoked_as() == "neotool-dlq", "on PATH: its name is enough"
