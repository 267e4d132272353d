"""Rate limiting and progress output, on a fake clock."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from neotool_common.dlqtool.pacing import BarProgress, LineProgress, Pacer, format_duration


@dataclass
class FakeTime:
    now: float = 100.0
    waits: list[float] = field(default_factory=list)
    stop_after_waits: int | None = None

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(round(seconds, 6))
        if self.stop_after_waits is not None and len(self.waits) >= self.stop_after_waits:
            return True
        self.now += seconds
        return False


def test_pacer_spaces_records_evenly() -> None:
    time = FakeTime()
    pacer = Pacer(4.0, time.clock, time.wait)

    assert all(pacer.wait_turn() for _ in range(5))

    assert time.waits == [0.25, 0.25, 0.25, 0.25]


def test_pacer_does_not_wait_when_the_caller_is_already_slower() -> None:
    time = FakeTime()
    pacer = Pacer(2.0, time.clock, time.wait)
    pacer.wait_turn()
    time.now += 3.0

    assert pacer.wait_turn()
    assert time.waits == []


def test_pacer_reports_a_stop_requested_while_waiting() -> None:
    time = FakeTime(stop_after_waits=1)
    pacer = Pacer(1.0, time.clock, time.wait)

    assert pacer.wait_turn()
    assert not pacer.wait_turn()


def test_no_rate_means_no_waiting() -> None:
    time = FakeTime()
    pacer = Pacer(None, time.clock, time.wait)

    assert all(pacer.wait_turn() for _ in range(100))
    assert time.waits == []


def test_line_progress_prints_a_line_per_interval_with_eta() -> None:
    time = FakeTime()
    stream = io.StringIO()
    progress = LineProgress(stream, time.clock, interval_s=5.0)

    progress.update(10, 100, 8)
    time.now += 5.0
    progress.update(50, 100, 40)
    time.now += 1.0
    progress.update(60, 100, 50)

    assert stream.getvalue() == "progress: 50/100 scanned, 10.0/s, ETA 5s, 40 replayed\n"


def test_bar_progress_redraws_in_place_and_ends_the_line() -> None:
    time = FakeTime()
    stream = io.StringIO()
    progress = BarProgress(stream, time.clock, width=10)

    time.now += 2.0
    progress.update(5, 10, 5)
    time.now += 0.05
    progress.update(6, 10, 6)
    time.now += 2.0
    progress.update(10, 10, 10)
    progress.close()

    assert stream.getvalue() == (
        "\r[#####-----] 5/10 scanned, 2.5/s, ETA 2s, 5 replayed\x1b[K"
        "\r[##########] 10/10 scanned, 2.5/s, ETA 0s, 10 replayed\x1b[K\n"
    )


def test_format_duration() -> None:
    assert format_duration(42.4) == "42s"
    assert format_duration(185) == "3m05s"
    assert format_duration(7620) == "2h07m"
