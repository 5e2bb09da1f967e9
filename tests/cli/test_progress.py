"""Progress where no terminal is watching (`make demo > log`): plain periodic lines, not silent transient bars."""

from __future__ import annotations

import io

from rich.console import Console

from shoprec.cli.common import progress_bars


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plain_console() -> tuple[Console, io.StringIO]:
    sink = io.StringIO()
    return Console(file=sink, force_terminal=False, width=200), sink


def test_without_a_terminal_each_tenth_prints_one_plain_line() -> None:
    console, sink = plain_console()
    assert not console.is_terminal
    clock = FakeClock()
    with progress_bars(console, clock) as progress:
        for done in range(0, 1001, 25):  # 41 updates, 2.5% apart
            clock.now = done / 100
            progress("itemknn testing", done, 1000)
    lines = sink.getvalue().splitlines()
    assert len(lines) == 10  # 10%, 20%, ..., 100%: no bar, no control codes
    assert lines[0] == "itemknn testing: 100/1,000 (10%), 1 s"
    assert lines[-1] == "itemknn testing: 1,000/1,000 (100%), 10 s"
    assert "\x1b" not in sink.getvalue()


def test_without_a_terminal_a_slow_task_still_prints_every_30_seconds() -> None:
    console, sink = plain_console()
    clock = FakeClock()
    with progress_bars(console, clock) as progress:
        for batch in range(1, 6):  # 20 s a batch of 200: 0.5% apart, far below a tenth
            clock.now = 20.0 * batch
            progress("sasrec training (batches)", batch, 200)
        progress("encoding item text", 64, 12_000)  # another task keeps its own clock and steps
    assert sink.getvalue().splitlines() == [
        "sasrec training (batches): 3/200 (2%), 40 s",  # timed from its first report, at 20 s
        "sasrec training (batches): 5/200 (2%), 80 s",
    ]


def test_a_task_that_starts_again_reports_again() -> None:
    console, sink = plain_console()
    with progress_bars(console, FakeClock()) as progress:
        for _ in range(2):
            progress("pop 1/1 validating", 10, 10)
    assert sink.getvalue().splitlines() == ["pop 1/1 validating: 10/10 (100%), 0 s"] * 2


def test_on_a_terminal_the_bars_stay_transient() -> None:
    sink = io.StringIO()
    console = Console(file=sink, force_terminal=True, width=100)
    with progress_bars(console) as progress:
        progress("ranking", 5, 10)
    assert "ranking: 5/10" not in sink.getvalue()
