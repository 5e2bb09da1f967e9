"""`shoprec serve`: the HTTP API on uvicorn, one worker, SIGHUP reloads the model."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Literal

import typer
import uvicorn
from fastapi import FastAPI

from shoprec.cli.common import console, load_data
from shoprec.serving.app import create_app, reload_model
from shoprec.serving.seed import seed_store
from shoprec.serving.settings import API_KEY_ENV, DATABASE_URL_ENV, DEFAULT_DATABASE_URL, ServingSettings
from shoprec.storage.store import Store


def serve(
    model_dir: Path = typer.Option(..., help="A model directory written by `shoprec train` or `shoprec demo`."),
    data: Path | None = typer.Option(
        None, help="Seed an EMPTY store with this dataset's catalog and events (ignored once the store has a catalog)."
    ),
    database_url: str = typer.Option(
        DEFAULT_DATABASE_URL, envvar=DATABASE_URL_ENV, help="sqlite:///path.sqlite3 or postgresql+psycopg://…"
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    search_encoder: Literal["e5", "minilm"] = typer.Option("e5", help="Text encoder of the search endpoint."),
    cache_dir: Path = typer.Option(Path("runs/cache"), help="Encoder cache: item text is encoded once, ever."),
) -> None:
    """Serve recommendations, similar items, search, explanations and event ingest over HTTP.

    Writes need the X-API-Key header: $SHOPREC_API_KEY, or a key generated and printed at startup.
    """
    run_server(model_dir, data, database_url, host, port, search_encoder, cache_dir)


def run_server(
    model_dir: Path,
    data: Path | None = None,
    database_url: str = DEFAULT_DATABASE_URL,
    host: str = "127.0.0.1",
    port: int = 8000,
    search_encoder: Literal["e5", "minilm"] = "e5",
    cache_dir: Path = Path("runs/cache"),
) -> None:
    """Seed (when asked and the store is empty), then serve until interrupted; `shoprec demo` ends here too."""
    api_key = os.environ.get(API_KEY_ENV) or _new_key()
    settings = ServingSettings(
        model_dir=model_dir,
        database_url=database_url,
        api_key=api_key,
        search_encoder=search_encoder,
        cache_dir=cache_dir,
    )
    if data is not None:
        _seed(settings.database_url, data)
    app = create_app(settings)
    base = f"http://{host}:{port}"

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                _announce(base, app.state.runtime.pipeline.catalog.current.ids[1:4])

    def on_hangup(_signal: int, _frame: FrameType | None) -> None:
        # a signal handler must return at once: the model loads on its own thread while the old one keeps serving
        threading.Thread(target=_reload, args=(app,), name="reload", daemon=True).start()

    signal.signal(signal.SIGHUP, on_hangup)
    # One worker: the pipeline holds items added through the API in memory, and a second process would not see them.
    server = Server(
        uvicorn.Config(app, host=host, port=port, loop="uvloop", http="httptools", access_log=False, lifespan="on")
    )
    server.run()  # a failed startup (a bad model dir, a busy port) is logged and exits with uvicorn's status 3


def _new_key() -> str:
    key = secrets.token_urlsafe(24)
    console.print(
        f"[yellow]{API_KEY_ENV} is not set; writes need this generated key (shown once):[/yellow]\n"
        f"  export {API_KEY_ENV}={key}"
    )
    return key


def _seed(database_url: str, data: Path) -> None:
    store = Store(database_url)
    try:
        if store.count_items():  # as in seed_store: the items mark a store as seeded
            console.print(f"{store.describe()} already has a catalog: --data {data} not loaded")
            return
        dataset, _ = load_data(data)
        n_items, n_events = seed_store(store, dataset)
        console.print(f"[green]seeded[/green] {store.describe()}: {n_items:,} items, {n_events:,} events")
    finally:
        store.close()


def _reload(app: FastAPI) -> None:
    try:
        health = reload_model(app)
    except Exception as error:  # the old model keeps serving; say why the new one did not load
        console.print(f"[red]reload failed:[/red] {error}")
        return
    console.print(f"[green]reloaded[/green] {health.model} {health.model_version}")


def _announce(base: str, items: Sequence[str]) -> None:
    """Commands that work as printed: a new user's views of two real catalog items, then that user's feed (already
    personal, no retraining), an explanation, similar items, and searches in English and Chinese."""
    first, second, third = items
    key = f'-H "X-API-Key: ${API_KEY_ENV}"'
    views = [{"user_id": "demo-user", "item_id": item, "type": "view"} for item in (first, second)]
    events = json.dumps({"events": views})
    console.print(
        f"[green]serving on {base}[/green] (docs: {base}/docs)\n"
        f"  curl -X POST {key} -H 'Content-Type: application/json' {base}/v1/events -d '{events}'\n"
        f"  curl '{base}/v1/users/demo-user/recommendations?k=5'\n"
        f"  curl '{base}/v1/users/demo-user/recommendations/{third}/explain'\n"
        f"  curl '{base}/v1/items/{first}/similar?k=5&user_id=demo-user'\n"
        f"  curl '{base}/v1/search?q=moisturizer+for+dry+skin&k=5'\n"
        f"  curl -G '{base}/v1/search' --data-urlencode 'q=指甲油' --data-urlencode 'k=5'\n"
        f"  curl '{base}/metrics'\n"
        f"  kill -HUP {os.getpid()}   # reload the model"
    )
