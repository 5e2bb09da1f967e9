"""`shoprec data validate|stats PATH`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from shoprec.cli.common import console, guarded
from shoprec.data.sources import default_rejects_path, load_source
from shoprec.models.base import item_popularity
from shoprec.privacy.pseudonym import Pseudonymizer

data_app = typer.Typer(help="Inspect and validate data before training on it.", no_args_is_help=True)
SHOWN_REJECTS = 20


@data_app.command()
@guarded
def validate(
    path: Path = typer.Argument(
        ..., help="A benchmark folder, a folder with events.* (+ catalog.*), or an events file."
    ),
    rejects: Path | None = typer.Option(
        None, help="Where to write the rejected rows (JSONL); default beside the input."
    ),
) -> None:
    """Load PATH, report every rejected row by file and line, and write them to a rejects file.

    Exits non-zero only when the file cannot be read at all or nothing usable is left.
    """
    dataset, report = load_source(path, Pseudonymizer.from_environment(), rejects_path=rejects)
    console.print(f"loaded {report.loaded:,} rows, rejected {report.rejected:,}")
    if report.rejects:
        console.print(f"rejected rows written to {rejects or default_rejects_path(path)}")
        table = Table("file", "line", "reason", title=f"rejected rows (first {SHOWN_REJECTS})")
        for reject in report.rejects[:SHOWN_REJECTS]:
            table.add_row(reject.file, str(reject.line), reject.reason)
        console.print(table)
    console.print(f"[green]usable:[/green] {dataset.n_users:,} users, {dataset.n_items:,} items")


@data_app.command()
@guarded
def stats(path: Path = typer.Argument(..., help="Any source `validate` accepts.")) -> None:
    """Counts, sequence lengths, event types and catalog coverage."""
    dataset, report = load_source(path, Pseudonymizer.from_environment())
    lengths = dataset.sequences.lengths()
    n_interactions = dataset.sequences.n_interactions
    never_interacted = int((item_popularity(dataset.sequences, dataset.items.size)[1:] == 0).sum())
    table = Table("measure", "value", title=f"{dataset.name}")
    rows = {
        "users": f"{dataset.n_users:,}",
        "items": f"{dataset.n_items:,}",
        "interactions": f"{n_interactions:,}",
        "rejected rows": f"{report.rejected:,}",
        "density": f"{n_interactions / max(1, dataset.n_users * dataset.n_items):.4%}",
        "sequence length min/median/mean/max": (
            f"{lengths.min()} / {np.median(lengths):g} / {lengths.mean():.2f} / {lengths.max()}"
        ),
        "items never interacted": f"{never_interacted:,}",
        "timestamps": "yes" if dataset.sequences.timestamps is not None else "no (file order)",
    }
    if dataset.event_types is not None:
        kinds, counts = np.unique(dataset.event_types, return_counts=True)
        rows["event types"] = ", ".join(f"{k}: {c:,}" for k, c in zip(kinds, counts, strict=True))
    for column in dataset.catalog.columns:
        present = int(dataset.catalog[column].notna().sum())
        rows[f"items with {column}"] = f"{present:,} ({present / max(1, dataset.n_items):.1%})"
    for name, value in rows.items():
        table.add_row(name, value)
    console.print(table)
