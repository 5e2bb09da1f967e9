"""`shoprec demo`: the main job on the shipped data, end to end, in a few minutes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from shoprec.cli.common import console, load_data, progress_bars
from shoprec.cli.models import show_metrics
from shoprec.data.dataset import Dataset
from shoprec.evaluation.protocol import rank
from shoprec.models.base import Recommender
from shoprec.models.registry import MODELS
from shoprec.training.artifact import save_artifact
from shoprec.training.config import RunConfig
from shoprec.training.experiment import run_protocol, train_model

SHOWN_USERS = 3
SHOWN_ITEMS = 5


def demo(
    data: Path = typer.Option(Path("data/amazon_beauty"), help="A shipped benchmark folder."),
    out: Path = typer.Option(Path("runs/demo"), help="Where the trained model directory goes."),
) -> None:
    """Benchmark every model (leave-one-out, full ranking), train the best on all data, show recommendations."""
    dataset, _ = load_data(data)
    with progress_bars() as progress:
        results = {name: run_protocol(dataset, RunConfig(model=name), progress) for name in MODELS}
    show_metrics(
        f"{dataset.name}: test split, full ranking over {dataset.n_items:,} items",
        {name: result.test for name, result in results.items()},
    )
    best = max(results, key=lambda name: results[name].valid.metrics["NDCG@10"])
    console.print(f"\nbest on validation NDCG@10: [bold]{best}[/bold]; training it on all data…")
    with progress_bars() as progress:
        selection, manifest = train_model(dataset, RunConfig(model=best), progress)
    save_artifact(out / best, selection.model, dataset.items, manifest)
    console.print(f"[green]saved[/green] {out / best}")
    show_recommendations(dataset, selection.model)


def show_recommendations(dataset: Dataset, model: Recommender) -> None:
    """A few users' recent history and their next recommendations, with titles."""
    rows = np.random.default_rng(0).choice(len(dataset.sequences), size=SHOWN_USERS, replace=False)
    histories = dataset.sequences.take(rows)
    ranked = rank(model, histories, SHOWN_ITEMS)
    for row, recommended in enumerate(ranked):
        table = Table(
            "recent history (newest last)",
            "recommended",
            title=f"user {row + 1} of {SHOWN_USERS}",
            show_lines=False,
        )
        recent = histories.row(row)[-SHOWN_ITEMS:]
        for position in range(SHOWN_ITEMS):
            seen = dataset.title(int(recent[position]))[:60] if position < len(recent) else ""
            table.add_row(seen, dataset.title(int(recommended[position]))[:60])
        console.print(table)
