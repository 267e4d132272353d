"""The spool keeps every appended record on disk, byte for byte, and removes only what it is told to."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from neotool_common.errors import ConfigurationError
from neotool_common.producing.spool import SPOOL_DIR_ENV, SPOOL_FILE_NAME, Spool, SpoolCorruptError, SpooledRecord

FAILED_AT = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)


def record(n: int, **changes: object) -> SpooledRecord:
    fields: dict[str, object] = {
        "topic": "people.ingest.v1",
        "key": f"r-{n}".encode(),
        "value": b'{"n": %d}' % n,
        "headers": (("trace", b"abc"), ("empty", None), ("trace", b"again")),
        "error": "_MSG_TIMED_OUT: Local: Message timed out",
        "failed_at": FAILED_AT,
    }
    fields.update(changes)
    return SpooledRecord(**fields)  # type: ignore[arg-type]


def test_a_record_survives_byte_for_byte_in_a_new_spool_object(tmp_path: Path) -> None:
    odd = record(1, key=None, value=b"\xff\x00\xfe not utf-8", headers=(("bin", b"\x80\x81"),))
    tombstone = record(2, value=None)
    Spool(tmp_path).append(odd)
    Spool(tmp_path).append(tombstone)

    assert Spool(tmp_path).records() == [odd, tombstone]


def test_failed_at_keeps_its_instant_whatever_the_offset(tmp_path: Path) -> None:
    plus_two = FAILED_AT.astimezone(timezone(timedelta(hours=2)))
    spool = Spool(tmp_path)
    spool.append(record(1, failed_at=plus_two))

    (read,) = spool.records()
    assert read.failed_at == FAILED_AT
    assert read.failed_at.utcoffset() == timedelta(0)


def test_the_file_is_json_lines_under_the_directory(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "nested" / "spool")
    for n in range(3):
        spool.append(record(n))

    lines = (tmp_path / "nested" / "spool" / SPOOL_FILE_NAME).read_bytes().splitlines()
    assert len(lines) == 3
    assert all(line.startswith(b"{") and line.endswith(b"}") for line in lines)
    assert len(spool) == 3


def test_append_fsyncs_before_returning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    spool = Spool(tmp_path)
    monkeypatch.setattr(os, "fsync", recording_fsync)
    spool.append(record(1))
    first = len(synced)
    spool.append(record(2))

    assert first == 2, "the new file and its directory entry"
    assert len(synced) == 3, "a later append syncs the file"


def test_remove_takes_out_only_the_named_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    records = [record(n) for n in range(5)]
    for each in records:
        spool.append(each)

    removed = spool.remove({records[1].entry_id, records[3].entry_id, "no-such-entry"})

    assert removed == 2
    assert Spool(tmp_path).records() == [records[0], records[2], records[4]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [SPOOL_FILE_NAME], "no temporary file left behind"


def test_removing_nothing_known_leaves_the_file_alone(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(record(1))
    before = os.stat(spool.path)

    assert spool.remove({"unknown"}) == 0
    assert spool.remove(set()) == 0
    assert os.stat(spool.path).st_ino == before.st_ino, "not rewritten"


def test_a_failed_rewrite_keeps_the_old_spool_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path)
    records = [record(n) for n in range(3)]
    for each in records:
        spool.append(each)

    def failing_replace(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        spool.remove({records[0].entry_id})

    assert spool.records() == records
    assert sorted(p.name for p in tmp_path.iterdir()) == [SPOOL_FILE_NAME]


def test_a_torn_last_line_is_skipped_and_cut_by_the_next_append(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    first, third = record(1), record(3)
    spool.append(first)
    with spool.path.open("ab") as torn:
        torn.write(record(2).to_line()[:25])  # a crash in the middle of an append

    assert spool.records() == [first]
    spool.append(third)

    assert spool.records() == [first, third]


def test_an_entry_that_only_lost_its_newline_is_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    first, second = record(1), record(2)
    spool.path.write_bytes(first.to_line().rstrip(b"\n"))

    spool.append(second)

    assert spool.records() == [first, second]


def test_a_corrupt_line_in_the_middle_raises_instead_of_dropping(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append(record(1))
    with spool.path.open("ab") as damaged:
        damaged.write(b'{"not": "an entry"}\n')
    spool.append(record(3))

    with pytest.raises(SpoolCorruptError) as caught:
        spool.records()
    assert caught.value.line_number == 2
    with pytest.raises(SpoolCorruptError):
        spool.remove({"anything"})


def test_from_env_needs_the_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Spool.from_env({SPOOL_DIR_ENV: "  "})
    assert caught.value.setting == SPOOL_DIR_ENV

    spool = Spool.from_env({SPOOL_DIR_ENV: str(tmp_path / "spool")})
    assert spool.path == tmp_path / "spool" / SPOOL_FILE_NAME
    assert spool.directory.is_dir()
