"""What every command shares: the console, progress bars, data loading with counts, and clean failures."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from shoprec.data.dataset import Dataset
from shoprec.data.rejects import LoadReport, SchemaError
from shoprec.data.sources import load_source
from shoprec.llm.errors import LLMError
from shoprec.privacy.consent import Admission
from shoprec.privacy.pseudonym import Pseudonymizer

console = Console(stderr=True, soft_wrap=True)
P = ParamSpec("P")
R = TypeVar("R")


def guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors a user can cause into one red line and exit code 2 instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            console.print(f"[red]error:[/red] invalid configuration: {problems}")
        except (SchemaError, ValueError, FileNotFoundError, KeyError, LLMError) as error:
            console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2)

    return wrapper


def load_data(
    path: Path, pseudonymize: Pseudonymizer | None = None, admission: Admission | None = None
) -> tuple[Dataset, LoadReport]:
    """Load any supported source and say how many rows were kept and set aside, and how many users were left
    out for privacy (no consent, forgotten)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    dataset, report = load_source(path, pseudonymize or Pseudonymizer.from_environment(), admission=admission)
    style = "yellow" if report.rejected else "green"
    withheld = f", left out {report.withheld_users:,} users (no consent or forgotten)" if report.withheld_users else ""
    console.print(
        f"[{style}]{path}: loaded {report.loaded:,} rows, rejected {report.rejected:,}{withheld}[/{style}] — "
        f"{dataset.n_users:,} users, {dataset.n_items:,} items, {dataset.sequences.n_interactions:,} interactions"
    )
    return dataset, report


@contextmanager
def progress_bars(
    target: Console | None = None, clock: Callable[[], float] = time.monotonic
) -> Iterator[Callable[[str, int, int], None]]:
    """A callback ``(description, done, total)``: one rich bar per description on a terminal; anywhere else (a
    log file, a pipe, CI) plain lines instead, since transient bars print nothing there (`make demo > log` was
    silent for 39 minutes)."""
    target = target if target is not None else console
    if not target.is_terminal:
        yield PlainProgress(target, clock).update
        return
    tasks: dict[str, TaskID] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=target, transient=True) as bars:

        def update(description: str, done: int, total: int) -> None:
            if description not in tasks:
                tasks[description] = bars.add_task(description, total=total)
            bars.update(tasks[description], completed=done)

        yield update


@dataclass
class PlainProgress:
    """Progress as plain lines: per task, one each time another ``step`` of the total is done, at least one every
    ``every`` seconds while it moves, and one when it completes."""

    target: Console
    clock: Callable[[], float] = time.monotonic
    step: float = 0.1
    every: float = 30.0
    _tasks: dict[str, _Task] = field(default_factory=dict)

    def update(self, description: str, done: int, total: int) -> None:
        now = self.clock()
        task = self._tasks.get(description)
        if task is None or done < task.done or task.done >= total:  # new, or started again
            task = self._tasks[description] = _Task(started=now, printed_at=now)
        task.done = done
        reached = int(done / total / self.step) if total > 0 else 0
        if reached > task.steps or now - task.printed_at >= self.every:
            percent = f" ({100 * done / total:.0f}%)" if total > 0 else ""
            self.target.print(
                f"{description}: {done:,}/{total:,}{percent}, {now - task.started:.0f} s", markup=False, highlight=False
            )
            task.printed_at, task.steps = now, reached


@dataclass
class _Task:
    started: float
    printed_at: float
    steps: int = 0  # steps of the total already reported
    done: int = 0
