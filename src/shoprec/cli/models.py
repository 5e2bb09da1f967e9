"""`shoprec train | evaluate | bench | recommend`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from shoprec.cli.common import console, load_data, progress_bars
from shoprec.data.align import reindex
from shoprec.data.dataset import Dataset
from shoprec.data.split import hold_out_last
from shoprec.evaluation.protocol import EvalResult, evaluate, rank
from shoprec.evaluation.report import markdown_table, slices_table
from shoprec.models.artifact import load_artifact, save_artifact
from shoprec.models.base import item_popularity
from shoprec.models.registry import MODELS
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.training.bench import bench as run_bench
from shoprec.training.config import RunConfig
from shoprec.training.experiment import run_protocol, train_model, tune
from shoprec.types import Sequences

HEADLINE = ["HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR@10", "Coverage@10", "Gini@10"]
DATA_HELP = "A benchmark folder (sequences.txt + items), a folder with events.* (+ catalog.*), or an events file."


def run_config(model: str | None, config: Path | None, split: str | None = None) -> RunConfig:
    """--config wins; --model alone runs the model's own defaults; both must agree when both are given."""
    if config is not None:
        run = RunConfig.from_toml(config)
        if model is not None and model != run.model:
            raise ValueError(f"--model {model} disagrees with {config} (model = {run.model!r})")
    elif model is None:
        raise ValueError(f"give --model (one of {', '.join(MODELS)}) or --config")
    else:
        run = RunConfig(model=model)
    return run if split is None else RunConfig.model_validate({**run.model_dump(), "split": split})


def show_metrics(title: str, results: dict[str, EvalResult]) -> None:
    console.print(f"\n[bold]{title}[/bold]")
    console.print(markdown_table(list(results.items()), HEADLINE), markup=False)


def train(
    data: Path = typer.Option(..., help=DATA_HELP),
    model: str | None = typer.Option(None, help=f"One of: {', '.join(MODELS)}."),
    out: Path = typer.Option(..., help="Model directory to write."),
    config: Path | None = typer.Option(None, help="Run config TOML (model, [options], [search])."),
) -> None:
    """Train on everything in DATA; each user's last item is used only as the validation target."""
    run = run_config(model, config)
    dataset, _ = load_data(data)
    with progress_bars() as progress:
        selection, manifest = train_model(dataset, run, progress)
    save_artifact(out, selection.model, dataset.items, manifest)
    show_metrics(
        f"validation (last item of each user), {len(selection.trials)} configuration(s) tried",
        {run.model: selection.best.valid},
    )
    console.print(f"[green]saved[/green] {out} (fit {manifest.fit_seconds:.1f}s, options {manifest.options})")


def evaluate_command(
    data: Path = typer.Option(..., help=DATA_HELP),
    model: str | None = typer.Option(None, help="Run the full leave-one-out protocol for this model."),
    config: Path | None = typer.Option(None, help="Run config TOML instead of --model."),
    model_dir: Path | None = typer.Option(None, help="Evaluate a trained model on DATA's last items instead."),
    split: str | None = typer.Option(
        None,
        help="leave_one_out (default), temporal (a global time cut) or cold_items (10% of items unseen in training).",
    ),
    out: Path | None = typer.Option(None, help="Write the full result as JSON."),
) -> None:
    """Full ranking over all items, seen items excluded: HR/NDCG/MRR/Recall/Precision/F1@5,10,20 and more."""
    dataset, _ = load_data(data)
    if model_dir is not None:
        result = _evaluate_trained(model_dir, dataset)
        payload: dict[str, object] = {"model_dir": str(model_dir), "test": result.to_dict()}
        show_metrics("test (last item of each user in DATA)", {str(model_dir): result})
    else:
        run = run_config(model, config, split)
        with progress_bars() as progress:
            protocol = run_protocol(dataset, run, progress)
        payload = protocol.to_dict()
        result = protocol.test
        show_metrics(f"{run.split}, full ranking", {"validation": protocol.valid, "test": protocol.test})
        console.print(
            f"fit {protocol.fit_seconds:.1f}s, total {protocol.total_seconds:.1f}s, "
            f"peak memory {protocol.peak_rss_mb:.0f} MB, options {protocol.options}"
        )
    console.print("\n[bold]test slices[/bold]")
    console.print(slices_table(result), markup=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2))


def tune_command(
    data: Path = typer.Option(..., help=DATA_HELP),
    config: Path = typer.Option(..., help="Run config TOML whose [search] grid is tried."),
    split: str | None = typer.Option(None, help="leave_one_out (default), temporal or cold_items."),
    out: Path | None = typer.Option(None, help="Write every trial as JSON."),
) -> None:
    """Try a config's grid on the validation split only (the test split is never read): one row per trial."""
    run = run_config(None, config, split)
    dataset, _ = load_data(data)
    with progress_bars() as progress:
        selection = tune(dataset, run, progress)
    rows = [(json.dumps(trial.options), trial.valid) for trial in selection.trials]
    console.print(f"\n[bold]validation, {run.split}, full ranking[/bold]")
    console.print(markdown_table(rows, HEADLINE), markup=False)
    for trial in selection.trials:
        console.print(f"fit {trial.fit_seconds:.1f}s  {json.dumps(trial.options)}", markup=False)
    console.print(f"best: {json.dumps(selection.best.options)}", markup=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        trials = [
            {"options": t.options, "valid": t.valid.metrics, "fit_seconds": t.fit_seconds} for t in selection.trials
        ]
        out.write_text(json.dumps(trials, indent=2))


def _evaluate_trained(model_dir: Path, dataset: Dataset) -> EvalResult:
    recommender, items, _ = load_artifact(model_dir)
    sequences, unknown = reindex(dataset.sequences, dataset.items, items)
    if unknown:
        console.print(f"[yellow]{unknown:,} interactions name items the model does not know; left out[/yellow]")
    history, targets = hold_out_last(sequences)
    popularity = item_popularity(history, items.size)
    with progress_bars() as progress:
        return evaluate(
            recommender,
            targets,
            item_popularity=popularity,
            on_chunk=lambda done: progress("testing", done, len(targets)),
        )


def bench(
    data: Path = typer.Option(..., help=DATA_HELP),
    configs: Path | None = typer.Option(None, help="Folder of run configs; default configs/<data folder name>."),
    models: str = typer.Option(
        "pop,itemknn,userknn,als,content",
        help=f"Comma-separated models when no config folder applies (any of: {', '.join(MODELS)}).",
    ),
    out: Path | None = typer.Option(None, help="Write the markdown table here too."),
) -> None:
    """Every model on one dataset through the leave-one-out protocol; prints a markdown table."""
    folder = configs if configs is not None else Path("configs") / data.name
    runs = (
        [RunConfig.from_toml(path) for path in sorted(folder.glob("*.toml"))]
        if folder.is_dir()
        else [RunConfig(model=name) for name in models.split(",")]
    )
    if not runs:
        raise ValueError(f"no *.toml run config in {folder}")
    load_data(data)
    with console.status("benchmarking") as status:
        results = run_bench(data, runs, on_start=lambda run: status.update(f"running {run.model}…"))
    table = markdown_table([(r.model, r.test) for r in results], HEADLINE)
    costs = "\n".join(
        f"| {r.model} | {r.fit_seconds:.1f} | {r.total_seconds:.1f} | {r.peak_rss_mb:.0f} | `{json.dumps(r.options)}` |"
        for r in results
    )
    text = f"{table}\n\n| model | fit s | total s | peak MB | options |\n|---|---:|---:|---:|---|\n{costs}\n"
    console.print(text, markup=False)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


def recommend(
    model_dir: Path = typer.Option(..., help="A directory written by `shoprec train`."),
    data: Path = typer.Option(..., help="Histories to rank from (" + DATA_HELP + ")"),
    all_users: bool = typer.Option(False, "--all-users", help="Recommend for every user in DATA."),
    user: list[str] | None = typer.Option(None, help="A user id as in DATA (repeatable)."),
    k: int = typer.Option(10, "-k", min=1, help="Items per user."),
    out: Path | None = typer.Option(None, help="JSONL output; default stdout."),
) -> None:
    """Rank every item for each user from their full history in DATA, seen items excluded."""
    recommender, items, _ = load_artifact(model_dir)
    pseudonymize = Pseudonymizer.from_environment(remember=True)
    dataset, _ = load_data(data, pseudonymize)
    if k >= len(items):
        raise ValueError(f"-k {k} must be below the number of items the model knows ({len(items)})")
    sequences, unknown = reindex(dataset.sequences, dataset.items, items)
    if unknown:
        console.print(f"[yellow]{unknown:,} interactions name items the model does not know; left out[/yellow]")
    rows = np.arange(len(sequences)) if all_users else _rows_of(user or [], dataset, sequences, pseudonymize)
    chosen = sequences.take(rows)
    with progress_bars() as progress:
        ranked = rank(recommender, chosen, k, on_chunk=lambda done: progress("ranking", done, len(chosen)))
    lines = [
        json.dumps({"user_id": pseudonymize.reveal(dataset.users.id_of(int(u))), "items": items.ids_of(r[r > 0])})
        for u, r in zip(chosen.users, ranked, strict=True)
    ]
    if out is None:
        typer.echo("\n".join(lines))
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n")
        console.print(f"[green]wrote[/green] {len(lines):,} users to {out}")


def _rows_of(users: list[str], dataset: Dataset, sequences: Sequences, pseudonymize: Pseudonymizer) -> np.ndarray:
    if not users:
        raise ValueError("give --all-users or at least one --user")
    missing = [u for u in users if pseudonymize(u) not in dataset.users]
    if missing:
        raise ValueError(f"user(s) not in the data: {', '.join(missing)}")
    position = {int(u): r for r, u in enumerate(sequences.users)}
    return np.array([position[dataset.users.index(pseudonymize(u))] for u in users], dtype=np.int64)
