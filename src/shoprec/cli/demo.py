"""`shoprec demo`: the main job on the shipped data, end to end, in a few minutes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from shoprec.cli.common import console, load_data, progress_bars
from shoprec.cli.models import show_metrics
from shoprec.cli.serve import run_server
from shoprec.data.dataset import Dataset
from shoprec.evaluation.protocol import rank
from shoprec.llm.settings import LLMSettings
from shoprec.models.artifact import save_artifact
from shoprec.models.base import Recommender
from shoprec.training.config import RunConfig
from shoprec.training.experiment import run_protocol, train_model

BASELINES = ("pop", "itemknn", "userknn", "als", "content")
SHOWN_USERS = 3
SHOWN_ITEMS = 5


def demo(
    data: Path = typer.Option(Path("data/amazon_beauty"), help="A shipped benchmark folder."),
    transformer: Path = typer.Option(Path("configs/demo/sasrec.toml"), help="Run config of the Transformer."),
    out: Path = typer.Option(Path("runs/demo"), help="Where the trained model directory goes."),
    serve: bool = typer.Option(True, help="End by serving the trained model over HTTP (Ctrl-C stops it)."),
    port: int = typer.Option(8000, help="Port of the demo server."),
) -> None:
    """Every model through the leave-one-out protocol (full ranking), then the fused Transformer trained on all
    data, saved, shown on a few users, and served over HTTP."""
    dataset, _ = load_data(data)
    runs = [RunConfig(model=name) for name in BASELINES] + [RunConfig.from_toml(transformer)]
    with progress_bars() as progress:
        results = {run.model: run_protocol(dataset, run, progress) for run in runs}
    show_metrics(
        f"{dataset.name}: test split, full ranking over {dataset.n_items:,} items",
        {name: result.test for name, result in results.items()},
    )
    console.print("\ntraining the Transformer on all data (each user's last item for validation only)…")
    with progress_bars() as progress:
        selection, manifest = train_model(dataset, runs[-1], progress)
    save_artifact(out / manifest.model, selection.model, dataset.items, manifest, dataset.users.ids)
    console.print(f"[green]saved[/green] {out / manifest.model} (encoder {manifest.encoder_name})")
    show_recommendations(dataset, selection.model)
    if serve:
        console.print(
            f"\nstarting the API on the trained model; its store ({out / 'serve.sqlite3'}) is seeded from {data} "
            "on first start, and search encodes the catalog with multilingual E5 once (minutes, then cached)…"
        )
        store = f"sqlite:///{out / 'serve.sqlite3'}"
        run_server(
            out / manifest.model,
            data,
            database_url=store,
            port=port,
            key_file=out / "api.key",
            llm=LLMSettings.from_environment(),  # the local default model unless $SHOPREC_LLM_* says otherwise
            show_assistant=True,
        )


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
