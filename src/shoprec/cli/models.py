"""`shoprec train | evaluate | bench | recommend`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from sqlalchemy.engine import make_url

from shoprec.cli.common import console, load_data, progress_bars
from shoprec.data.align import reindex
from shoprec.data.dataset import Dataset
from shoprec.data.split import hold_out_last
from shoprec.evaluation.ledger import Ledger
from shoprec.evaluation.protocol import EvalResult, evaluate, rank
from shoprec.evaluation.report import HEADLINE, bench_section, gaps_table, markdown_table, slices_table
from shoprec.models.artifact import load_artifact, save_artifact
from shoprec.models.base import item_popularity
from shoprec.models.registry import MODELS, create_model
from shoprec.privacy.consent import Admission, ConsentPolicy
from shoprec.privacy.erasure import erasure_tag
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.serving.settings import DATABASE_URL_ENV, DEFAULT_DATABASE_URL
from shoprec.storage.store import Store
from shoprec.training.bench import BenchEntry
from shoprec.training.bench import bench as run_bench
from shoprec.training.config import RunConfig
from shoprec.training.experiment import run_protocol, train_model, tune
from shoprec.types import Sequences

CLASSIC = "pop,itemknn,userknn,als"  # the baselines docs/benchmarks.md publishes for every dataset
DATA_HELP = "A benchmark folder (sequences.txt + items), a folder with events.* (+ catalog.*), or an events file."


def run_config(model: str | None, config: Path | None, split: str | None = None) -> RunConfig:
    """--config wins; --model alone runs the model's default-config rule over the data (``options_for``); both
    must agree when both are given."""
    if config is not None:
        run = RunConfig.from_toml(config)
        if model is not None and model != run.model:
            raise ValueError(f"--model {model} disagrees with {config} (model = {run.model!r})")
    elif model is None:
        raise ValueError(f"give --model (one of {', '.join(MODELS)}) or --config")
    else:
        run = RunConfig(model=model, options_from_data=True)
    return run if split is None else RunConfig.model_validate({**run.model_dump(), "split": split})


def show_metrics(title: str, results: dict[str, EvalResult]) -> None:
    console.print(f"\n[bold]{title}[/bold]")
    console.print(markdown_table(list(results.items()), HEADLINE), markup=False)
    repeats = {name: result.n_repeat_targets for name, result in results.items() if result.n_repeat_targets}
    if repeats:
        counts = ", ".join(f"{name} {count:,}" for name, count in repeats.items())
        console.print(
            f"[yellow]repeat targets (already in the user's history, so excluded as seen and never hit): "
            f"{counts}[/yellow]"
        )


def show_test_reads(reads: int, ledger: Ledger) -> None:
    """Say how often this test split has now been read: each read is a chance to tune on the test set."""
    style = "green" if reads == 1 else "yellow"
    console.print(
        f"[{style}]test split of this data read {reads} time(s) with this configuration[/{style}] ({ledger.path})"
    )


def train(
    data: Path = typer.Option(..., help=DATA_HELP),
    model: str | None = typer.Option(None, help=f"One of: {', '.join(MODELS)}."),
    out: Path = typer.Option(..., help="Model directory to write."),
    config: Path | None = typer.Option(None, help="Run config TOML (model, [options], [search])."),
    database_url: str = typer.Option(
        DEFAULT_DATABASE_URL,
        envvar=DATABASE_URL_ENV,
        help="The serving store whose consents and erasures training obeys (skipped if its SQLite file is absent).",
    ),
    consent_required: bool = typer.Option(False, help="Opt-in: train only on users who said yes."),
) -> None:
    """Train on everything in DATA; each user's last item is used only as the validation target. Users the store
    has forgotten, and users without consent (in the store or DATA's consent column), are left out."""
    fit_and_save(data, run_config(model, config), out, admission(database_url, consent_required))


def admission(database_url: str, consent_required: bool) -> Admission:
    """Who may be trained on: the store's recorded consents and erasures (none when its SQLite file does not
    exist yet: nobody has answered or been forgotten there) under the shop's policy."""
    policy = ConsentPolicy(required=consent_required)
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        return Admission(policy)
    store = Store(database_url, consent=policy)
    try:
        return Admission(policy, store.consents(), store.erased_tags())
    finally:
        store.close()


def fit_and_save(data: Path, run: RunConfig, out: Path, admitted: Admission) -> None:
    """Load DATA's admitted users, fit and select ``run`` on them, save the model directory and say how it did."""
    dataset, _ = load_data(data, admission=admitted)
    with progress_bars() as progress:
        selection, manifest = train_model(dataset, run, progress)
    held_out = set() if manifest.held_out is None else set(manifest.held_out.tags)
    trained = [user for user in dataset.users.ids if erasure_tag(user) not in held_out]
    save_artifact(out, selection.model, dataset.items, manifest, trained)
    show_metrics(
        f"validation (last item of each user), {len(selection.trials)} configuration(s) tried",
        {run.model: selection.best.valid},
    )
    console.print(f"[green]saved[/green] {out} (fit {manifest.fit_seconds:.1f}s, options {manifest.options})")


def evaluate_command(
    data: Path = typer.Option(..., help=DATA_HELP),
    model: str | None = typer.Option(None, help="Run the full leave-one-out protocol for this model."),
    config: Path | None = typer.Option(None, help="Run config TOML instead of --model."),
    model_dir: Path | None = typer.Option(
        None, help="Evaluate a trained model on DATA's last items instead (DATA must not be its training data)."
    ),
    split: str | None = typer.Option(
        None,
        help="leave_one_out (default), temporal (a global time cut) or cold_items (10% of items unseen in training).",
    ),
    out: Path | None = typer.Option(None, help="Write the full result as JSON."),
) -> None:
    """Full ranking over all items, seen items excluded: HR/NDCG/MRR/Recall/Precision/F1@5,10,20 and more.

    Every read of a test split is appended to the ledger ($SHOPREC_TEST_LEDGER, default runs/test_reads.jsonl).
    """
    dataset, _ = load_data(data)
    ledger = Ledger.default()
    if model_dir is not None:
        result, reads = _evaluate_trained(model_dir, dataset, data, ledger)
        payload: dict[str, object] = {"model_dir": str(model_dir), "test": result.to_dict(), "test_reads": reads}
        show_metrics("test (last item of each user in DATA)", {str(model_dir): result})
    else:
        run = run_config(model, config, split)
        with progress_bars() as progress:
            protocol = run_protocol(dataset, run, progress, ledger)
        payload = protocol.to_dict()
        result, reads = protocol.test, protocol.test_reads
        show_metrics(f"{run.split}, full ranking", {"validation": protocol.valid, "test": protocol.test})
        console.print(
            f"fit {protocol.fit_seconds:.1f}s, total {protocol.total_seconds:.1f}s, "
            f"peak memory {protocol.peak_rss_mb:.0f} MB, options {protocol.options}"
        )
    show_test_reads(reads, ledger)
    console.print("\n[bold]test slices[/bold]")
    console.print(slices_table(result), markup=False)
    if result.gaps:
        console.print("\n[bold]test group gaps[/bold]")
        console.print(gaps_table(result), markup=False)
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


def _evaluate_trained(model_dir: Path, dataset: Dataset, data: Path, ledger: Ledger) -> tuple[EvalResult, int]:
    """Rank each user's last item from the rest of their history; refuses the model's own training data, whose
    last items were the validation targets the model was selected on."""
    recommender, items, manifest = load_artifact(model_dir)
    sequences, unknown = reindex(dataset.sequences, dataset.items, items)
    if unknown:
        console.print(f"[yellow]{unknown:,} interactions name items the model does not know; left out[/yellow]")
    history, targets = hold_out_last(sequences)
    if dataset.fingerprint() == manifest.data_fingerprint:
        raise ValueError(
            f"{data} is the data {model_dir} was trained on (data fingerprint {manifest.data_fingerprint[:12]}): "
            "its last items were the validation targets the model was selected on, so these would be validation "
            f"figures, not test figures. Evaluate on data the model has not seen, or run the whole protocol with "
            f"`shoprec evaluate --data {data} --model {manifest.model}`."
        )
    popularity = item_popularity(history, items.size)
    with progress_bars() as progress:
        result = evaluate(
            recommender,
            targets,
            item_popularity=popularity,
            on_chunk=lambda done: progress("testing", done, len(targets)),
        )
    config = {"model_dir": str(model_dir), "trained_on": manifest.data_fingerprint, "options": manifest.options}
    reads = ledger.record(
        data_name=dataset.name,
        data_fingerprint=dataset.fingerprint(),
        model=manifest.model,
        config=config,
        split="last_item",
        n_users=len(targets),
    )
    return result, reads


def bench(
    data: Path = typer.Option(..., help=DATA_HELP),
    models: str = typer.Option(
        CLASSIC,
        help="Comma-separated run configs, in order: each NAME runs CONFIGS/NAME.toml, or, when CONFIGS does not "
        f"exist, model NAME with its defaults (any of: {', '.join(MODELS)}).",
    ),
    configs: Path | None = typer.Option(None, help="Folder of run configs; default configs/<data folder name>."),
    out: Path | None = typer.Option(None, help="Write the markdown tables here too."),
    results: Path | None = typer.Option(
        None, help="Write one JSON record per config here: what docs/benchmarks.md tables are generated from."
    ),
) -> None:
    """Run configs on one dataset through the leave-one-out protocol, each in a fresh process; prints the
    markdown tables docs/benchmarks.md publishes, and with --results the raw JSON records they are made from."""
    folder = configs if configs is not None else Path("configs") / data.name
    entries = [_bench_entry(name.strip(), folder) for name in models.split(",")]
    load_data(data)
    command = f"shoprec bench --data {data} --models {models}" + "".join(
        f" --{flag} {value}" for flag, value in (("configs", configs), ("results", results)) if value is not None
    )
    ledger = Ledger.default()

    def announce(entry: BenchEntry) -> None:
        console.print(f"[{entries.index(entry) + 1}/{len(entries)}] {entry.name}: running in a child process…")

    records = run_bench(data, entries, ledger, command, on_start=announce)
    text = bench_section(records)
    console.print(text, markup=False)
    if results is not None:
        results.mkdir(parents=True, exist_ok=True)
        for record in records:
            (results / f"{record['name']}.json").write_text(json.dumps(record, indent=2) + "\n")
        console.print(f"[green]wrote[/green] {len(records)} JSON record(s) to {results}")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


def _bench_entry(name: str, folder: Path) -> BenchEntry:
    """NAME's config from ``folder``; the model's defaults only when there is no config folder at all."""
    if not folder.is_dir():
        entry = BenchEntry(RunConfig(model=name, options_from_data=True))
    elif (folder / f"{name}.toml").is_file():
        entry = BenchEntry(RunConfig.from_toml(folder / f"{name}.toml"), folder / f"{name}.toml")
    else:
        available = ", ".join(sorted(path.stem for path in folder.glob("*.toml")))
        raise FileNotFoundError(f"no run config {folder / name}.toml; {folder} holds: {available or 'none'}")
    create_model(entry.run.model, entry.run.options)  # an unknown model or option fails now, not minutes later
    return entry


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
