"""`shoprec forget | retrain | store purge`: a user's erasure, the retraining it calls for, and retention."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from shoprec.cli.common import console, guarded
from shoprec.cli.models import DATA_HELP, admission, fit_and_save
from shoprec.models.artifact import read_manifest
from shoprec.privacy.erasure import flag_models
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.serving.settings import DATABASE_URL_ENV, DEFAULT_DATABASE_URL
from shoprec.storage.store import Store
from shoprec.training.config import RunConfig

STORE_HELP = "The serving store: sqlite:///path.sqlite3 or postgresql+psycopg://…"
store_app = typer.Typer(help="Maintain the serving store.", no_args_is_help=True)


def forget(
    user: list[str] = typer.Option(..., help="A user id as the shop knows it (repeat for several)."),
    database_url: str = typer.Option(DEFAULT_DATABASE_URL, envvar=DATABASE_URL_ENV, help=STORE_HELP),
    models: list[Path] = typer.Option(
        [Path("runs")], help="Model directories, or folders holding them, to flag when trained on the user."
    ),
) -> None:
    """Erase the users' events, conversations and consent records, rewrite the store so the bytes are gone, and
    flag every model directory that learnt from them (`shoprec retrain` it)."""
    pseudonymize = Pseudonymizer.from_environment()
    store = Store(database_url)
    try:
        erased = store.forget_users([pseudonymize(raw) for raw in user])
        compacted = store.compact()
    finally:
        store.close()
    flagged = flag_models(models, erased.tags)
    console.print(
        f"[green]forgot {len(erased.tags)} user(s)[/green]: {erased.events:,} events and {erased.chat_turns:,} chat "
        f"turns erased; store file {'rewritten' if compacted else 'not rewritten (see docs/privacy.md)'}"
    )
    for directory in flagged:
        console.print(f"[yellow]retrain needed[/yellow]: {directory} was trained on a forgotten user")


def retrain(
    model_dir: Path = typer.Option(..., help="The model directory to retrain (its run config is reused)."),
    data: Path = typer.Option(..., help=DATA_HELP),
    out: Path = typer.Option(..., help="Model directory to write (may be MODEL_DIR itself)."),
    database_url: str = typer.Option(DEFAULT_DATABASE_URL, envvar=DATABASE_URL_ENV, help=STORE_HELP),
    consent_required: bool = typer.Option(False, help="Opt-in: train only on users who said yes."),
) -> None:
    """Train MODEL_DIR's configuration again on DATA without forgotten users and users without consent; with the
    same data and seed, the result equals a model trained on data that never held them."""
    manifest = read_manifest(model_dir)
    fit_and_save(data, RunConfig.model_validate(manifest.run), out, admission(database_url, consent_required))


@store_app.command()
@guarded
def purge(
    days: float = typer.Option(..., min=0, help="Retention period: events that happened longer ago are deleted."),
    database_url: str = typer.Option(DEFAULT_DATABASE_URL, envvar=DATABASE_URL_ENV, help=STORE_HELP),
) -> None:
    """Delete events and chat turns older than the retention period, then rewrite the store's file."""
    store = Store(database_url)
    try:
        purged = store.purge(time.time() - days * 86_400)
        store.compact()
    finally:
        store.close()
    console.print(f"[green]purged[/green] {purged.events:,} events and {purged.chat_turns:,} chat turns")
