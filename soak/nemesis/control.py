"""The folder through which the nemesis drives every consumer's handler (``SOAK_CONTROL``, see soak/consumer.py).

``outage`` exists: every ``process()`` raises a transient ``ConnectionError`` (a downstream outage).
``spike`` holds a Unix time: ``process()`` sleeps until then (a latency spike), at most 30 s.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["Control"]


class Control:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def outage(self, on: bool) -> None:
        flag = self.folder / "outage"
        if on:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def spike(self, seconds: float) -> None:
        """Every ``process()`` that starts in the next ``seconds`` lasts until they are over."""
        target = self.folder / "spike.tmp"
        target.write_text(str(time.time() + seconds))
        target.replace(self.folder / "spike")

    def clear(self) -> None:
        self.outage(False)
        (self.folder / "spike").unlink(missing_ok=True)
