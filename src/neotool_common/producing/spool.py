"""A durable local spool for records the broker finally refused (platform standard §3.3, fallback storage).

:class:`~neotool_common.producing.producer.EnvelopeProducer` appends a :class:`SpooledRecord` for every record whose
delivery finally failed, and ``resend_spooled()`` publishes them again and removes the acknowledged ones.

On disk: one file, ``<directory>/spool.jsonl``, one JSON object per line; key, value and header values are
base64 so any bytes survive. Durability:

* :meth:`Spool.append` writes one line and ``fsync``\\ s it (and the directory when the file is new) before
  it returns, so a record it accepted survives a crash or power loss.
* :meth:`Spool.remove` writes the remaining lines to a temporary file in the same directory, ``fsync``\\ s it
  and renames it over the spool (``os.replace``): a crash leaves either the old spool or the new one.
* A last line cut short by a crash in the middle of an append is skipped with a warning when read, and cut
  off by the next append (that append never returned, so nobody was told the record was safe). Any other
  unreadable line raises :class:`SpoolCorruptError` rather than being dropped.

Safe for the threads of **one process** through **one** ``Spool`` object per directory. Two processes (or two
objects) sharing a directory can lose each other's appends during a removal: give each producer process
its own directory.

The directory comes from ``PRODUCER_SPOOL_DIR`` (:meth:`Spool.from_env`) or is given explicitly.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
import threading
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Final

import orjson
import structlog

from neotool_common.errors import ConfigurationError, NeotoolError

__all__ = ["SPOOL_DIR_ENV", "SPOOL_FILE_NAME", "Spool", "SpoolCorruptError", "SpooledRecord"]

SPOOL_DIR_ENV: Final = "PRODUCER_SPOOL_DIR"
SPOOL_FILE_NAME: Final = "spool.jsonl"

_log = structlog.get_logger(__name__)

Header = tuple[str, bytes | None]


class SpoolCorruptError(NeotoolError):
    """A spool line other than a torn last one cannot be read; nothing is dropped, a person must look."""

    def __init__(self, path: Path, line_number: int, problem: str) -> None:
        self.path = path
        self.line_number = line_number
        super().__init__(f"{path}:{line_number}: {problem}")


@dataclass(frozen=True)
class SpooledRecord:
    """One record the broker did not acknowledge, with why and when. ``entry_id`` names it in the spool."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]
    error: str
    failed_at: datetime
    entry_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_line(self) -> bytes:
        document = {
            "entry_id": self.entry_id,
            "topic": self.topic,
            "key": _b64(self.key),
            "value": _b64(self.value),
            "headers": [[name, _b64(value)] for name, value in self.headers],
            "error": self.error,
            "failed_at": self.failed_at.astimezone(UTC).isoformat(),
        }
        return orjson.dumps(document) + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> SpooledRecord:
        """Parse one line; raises ``ValueError``, ``KeyError`` or ``TypeError`` when it is not a spool entry."""
        document: dict[str, Any] = orjson.loads(line)
        failed_at = datetime.fromisoformat(document["failed_at"])
        if failed_at.tzinfo is None:
            raise ValueError("failed_at has no timezone")
        return cls(
            topic=str(document["topic"]),
            key=_unb64(document["key"]),
            value=_unb64(document["value"]),
            headers=tuple((str(name), _unb64(value)) for name, value in document["headers"]),
            error=str(document["error"]),
            failed_at=failed_at,
            entry_id=str(document["entry_id"]),
        )


class Spool:
    """The spool file in ``directory`` (created if missing). See the module docstring for the guarantees."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / SPOOL_FILE_NAME
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Spool:
        """The spool in ``PRODUCER_SPOOL_DIR``; raises :class:`ConfigurationError` when it is not set."""
        directory = (os.environ if env is None else env).get(SPOOL_DIR_ENV, "").strip()
        if not directory:
            raise ConfigurationError(SPOOL_DIR_ENV, "is required: a directory for records the broker refused")
        return cls(directory)

    def append(self, record: SpooledRecord) -> None:
        """Write ``record`` and ``fsync`` it; when this returns, the record is on disk. Raises ``OSError``."""
        line = record.to_line()
        with self._lock:
            created = not self.path.exists()
            with self.path.open("a+b") as spool_file:
                self._cut_torn_tail(spool_file)
                spool_file.write(line)
                spool_file.flush()
                os.fsync(spool_file.fileno())
            if created:
                _fsync_directory(self.directory)

    def records(self) -> list[SpooledRecord]:
        """Every record in the spool, oldest first."""
        with self._lock:
            return [record for _, record in self._read()]

    def remove(self, entry_ids: Collection[str]) -> int:
        """Remove the records named by ``entry_ids`` with an atomic rewrite; returns how many were removed."""
        wanted = set(entry_ids)
        if not wanted:
            return 0
        with self._lock:
            entries = self._read()
            kept = [line for line, record in entries if record.entry_id not in wanted]
            removed = len(entries) - len(kept)
            if removed:
                self._rewrite(kept)
            return removed

    def __len__(self) -> int:
        return len(self.records())

    def _read(self) -> list[tuple[bytes, SpooledRecord]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        entries: list[tuple[bytes, SpooledRecord]] = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entries.append((line, SpooledRecord.from_line(line)))
            except (ValueError, KeyError, TypeError, binascii.Error) as exc:
                if number == len(lines):  # no newline after it: an append that never finished
                    _log.warning("spool.torn_line_skipped", path=str(self.path), line=number)
                    continue
                raise SpoolCorruptError(self.path, number, f"unreadable spool entry ({exc})") from exc
        return entries

    def _cut_torn_tail(self, spool_file: BinaryIO) -> None:
        """Drop a last line without its newline (a crashed append) so it cannot swallow the next entry."""
        size = spool_file.seek(0, os.SEEK_END)
        if size == 0:
            return
        spool_file.seek(size - 1)
        if spool_file.read(1) == b"\n":
            return
        spool_file.seek(0)
        data = spool_file.read()
        complete = data.rfind(b"\n") + 1
        if _is_entry(data[complete:]):
            spool_file.write(b"\n")  # only the newline was lost: keep the entry
            return
        spool_file.truncate(complete)
        _log.warning("spool.torn_line_cut", path=str(self.path), bytes=size - complete)

    def _rewrite(self, lines: list[bytes]) -> None:
        handle, temp_name = tempfile.mkstemp(prefix=f".{SPOOL_FILE_NAME}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(handle, "wb") as temp_file:
                temp_file.write(b"".join(line + b"\n" for line in lines))
                temp_file.flush()
                os.fsync(temp_file.fileno())
            os.replace(temp_name, self.path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        _fsync_directory(self.directory)


def _is_entry(line: bytes) -> bool:
    try:
        SpooledRecord.from_line(line)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return False
    return True


def _fsync_directory(directory: Path) -> None:
    """Make a created or renamed file's directory entry durable too."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)
