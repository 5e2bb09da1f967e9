"""What every command shares: the console, progress bars, data loading with counts, and clean failures."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from shoprec.data.dataset import Dataset
from shoprec.data.rejects import LoadReport, SchemaError
from shoprec.data.sources import load_source
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
        except (SchemaError, ValueError, FileNotFoundError, KeyError) as error:
            console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2)

    return wrapper


def load_data(path: Path, pseudonymize: Pseudonymizer | None = None) -> tuple[Dataset, LoadReport]:
    """Load any supported source and say how many rows were kept and set aside."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    dataset, report = load_source(path, pseudonymize or Pseudonymizer.from_environment())
    style = "yellow" if report.rejected else "green"
    console.print(
        f"[{style}]{path}: loaded {report.loaded:,} rows, rejected {report.rejected:,}[/{style}] — "
        f"{dataset.n_users:,} users, {dataset.n_items:,} items, {dataset.sequences.n_interactions:,} interactions"
    )
    return dataset, report


@contextmanager
def progress_bars() -> Iterator[Callable[[str, int, int], None]]:
    """A callback ``(description, done, total)`` that drives one rich bar per description."""
    tasks: dict[str, TaskID] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bars:

        def update(description: str, done: int, total: int) -> None:
            if description not in tasks:
                tasks[description] = bars.add_task(description, total=total)
            bars.update(tasks[description], completed=done)

        yield update
