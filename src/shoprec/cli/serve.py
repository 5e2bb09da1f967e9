"""`shoprec serve`: the HTTP API on uvicorn, one or several worker processes; SIGHUP reloads the model."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import stat
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any, Literal

import typer
import uvicorn
from fastapi import FastAPI

from shoprec.cli.common import console, load_data
from shoprec.llm.errors import LLMUnavailable
from shoprec.llm.local import Sidecar
from shoprec.llm.settings import LLMSettings
from shoprec.privacy.consent import ConsentPolicy
from shoprec.privacy.pseudonym import load_or_create_key
from shoprec.serving.app import create_app, reload_model
from shoprec.serving.guard import API_KEY_HEADER
from shoprec.serving.metrics import MULTIPROCESS_ENV
from shoprec.serving.seed import seed_store
from shoprec.serving.settings import (
    API_KEY_ENV,
    DATABASE_URL_ENV,
    DEFAULT_DATABASE_URL,
    SETTINGS_ENV,
    ServingSettings,
)
from shoprec.storage.store import Store

WORKER_START_SECONDS = 900  # a worker's start-up: model, catalog, and on a cold cache the E5 encoding of every item
NOBODY = "nobody-yet"  # a user id that asks for the cold-start feed
DEFAULT_KEY_FILE = Path("runs/serve/api.key")


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
    search_encoder: Literal["e5", "minilm", "hashing"] = typer.Option(
        "e5", help="Text encoder of the search endpoint (hashing: word overlap, no model to load)."
    ),
    cache_dir: Path = typer.Option(Path("runs/cache"), help="Encoder cache: item text is encoded once, ever."),
    workers: int = typer.Option(
        1, min=1, help="Server processes on the one port and store (one request uses one core: match the cores)."
    ),
    require_key_for_reads: bool = typer.Option(
        False, help="Reads (feeds, explanations, search, similar items) need the key too: they reveal histories."
    ),
    key_file: Path = typer.Option(
        DEFAULT_KEY_FILE, help=f"Where the API key is kept (created 0600) when ${API_KEY_ENV} is not set."
    ),
    llm: Literal["local", "openai", "none"] = typer.Option(
        "local",
        envvar="SHOPREC_LLM_BACKEND",
        help="The assistant's LLM: local (llama.cpp on a packaged model, in a sidecar process), openai (any "
        "OpenAI-compatible server at --llm-base-url) or none (LLM routes answer 503; feeds and search unaffected).",
    ),
    llm_model: str | None = typer.Option(
        None, envvar="SHOPREC_LLM_MODEL", help="local: qwen2.5-coder-1.5b (default), qwen2.5-coder-0.5b, smollm2-135m."
    ),
    llm_base_url: str | None = typer.Option(
        None, envvar="SHOPREC_LLM_BASE_URL", help="openai: the API root, e.g. http://127.0.0.1:8080/v1."
    ),
    retention_days: float | None = typer.Option(
        None, min=0, help="Purge events older than this many days (at start, then hourly); default: keep them."
    ),
    consent_required: bool = typer.Option(
        False, help="Opt-in: personalise only users who said yes (PUT /v1/users/{id}/consent); default opt-out."
    ),
    keep_events_without_consent: bool = typer.Option(
        False, help="Store events of users without consent (never used to personalise or train); default: drop."
    ),
) -> None:
    """Serve recommendations, similar items, search, explanations and event ingest over HTTP.

    Writes need the X-API-Key header: $SHOPREC_API_KEY, or the key in --key-file (generated on first start, never
    printed). SIGHUP (or POST /v1/admin/reload) reloads the model; with several workers, a rolling restart.
    """
    chosen = {"backend": llm, "model": llm_model, "base_url": llm_base_url}
    run_server(
        model_dir,
        data,
        database_url,
        host,
        port,
        search_encoder,
        cache_dir,
        workers,
        require_key_for_reads,
        key_file,
        LLMSettings.from_environment(**{name: value for name, value in chosen.items() if value is not None}),
        retention_days=retention_days,
        consent=ConsentPolicy(required=consent_required, keep_events_without_consent=keep_events_without_consent),
    )


def run_server(
    model_dir: Path,
    data: Path | None = None,
    database_url: str = DEFAULT_DATABASE_URL,
    host: str = "127.0.0.1",
    port: int = 8000,
    search_encoder: Literal["e5", "minilm", "hashing"] = "e5",
    cache_dir: Path = Path("runs/cache"),
    workers: int = 1,
    read_key_required: bool = False,
    key_file: Path = DEFAULT_KEY_FILE,
    llm: LLMSettings | None = None,
    show_assistant: bool = False,
    retention_days: float | None = None,
    consent: ConsentPolicy | None = None,
) -> None:
    """Seed (when asked and the store is empty), then serve until interrupted; `shoprec demo` ends here too, and
    with ``show_assistant`` prints a few assistant exchanges once the API is up.
    A local LLM runs as one sidecar process for all workers, started before them and stopped after them."""
    settings = ServingSettings(
        model_dir=model_dir,
        database_url=database_url,
        api_key=api_key(key_file),
        read_key_required=read_key_required,
        search_encoder=search_encoder,
        cache_dir=cache_dir,
        workers=workers,
        retention_days=retention_days,
        consent=consent or ConsentPolicy(),
    )
    if data is not None:
        _seed(settings.database_url, data)
    load_or_create_key()  # before any worker starts: two workers must not each create a pseudonym key
    base = f"http://{host}:{port}"
    with contextlib.ExitStack() as stack:
        settings = settings.model_copy(update=_llm_settings(llm or LLMSettings(backend="none"), stack))
        announce = threading.Thread(
            target=_announce_when_up, args=(base, settings, show_assistant), name="announce", daemon=True
        )
        announce.start()
        _serve(settings, host, port)


def _llm_settings(llm: LLMSettings, stack: contextlib.ExitStack) -> dict[str, Any]:
    """The workers' LLM settings: a local model is started here, in a sidecar, and reached like a remote server.
    A local model that cannot start (not installed, no xllamacpp) leaves the assistant unavailable, saying why."""
    if llm.backend != "local":
        return {"llm": llm}
    console.print(f"starting the local LLM {llm.model} (a sidecar process at lower CPU priority) …")
    try:
        base_url = stack.enter_context(Sidecar(llm))
    except LLMUnavailable as error:
        console.print(f"[yellow]the assistant is unavailable (LLM routes answer 503):[/yellow] {error}")
        return {"llm": LLMSettings(backend="none"), "llm_unavailable": str(error)}
    return {"llm": llm.model_copy(update={"backend": "openai", "base_url": base_url})}


def _serve(settings: ServingSettings, host: str, port: int) -> None:
    options: dict[str, Any] = {"host": host, "port": port, "loop": "uvloop", "http": "httptools", "access_log": False}
    workers = settings.workers
    if workers == 1:
        app = create_app(settings)

        def on_hangup(_signal: int, _frame: FrameType | None) -> None:
            # a signal handler must return at once: the model loads on its own thread while the old one keeps serving
            threading.Thread(target=_reload, args=(app,), name="reload", daemon=True).start()

        signal.signal(signal.SIGHUP, on_hangup)
        uvicorn.run(app, lifespan="on", **options)  # a failed startup is logged and exits with uvicorn's status 3
        return
    # Workers are processes started from an import string: settings travel as JSON in the environment, metrics
    # through files that any worker's /metrics adds up. uvicorn's supervisor answers SIGHUP with a rolling restart
    # and waits for each new worker's model to load (hence the long health-check timeout) before stopping the old.
    with tempfile.TemporaryDirectory(prefix="shoprec-metrics-") as metrics_dir:
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        os.environ[MULTIPROCESS_ENV] = metrics_dir
        uvicorn.run(
            "shoprec.serving.app:app_from_environment",
            factory=True,
            workers=workers,
            timeout_worker_healthcheck=WORKER_START_SECONDS,
            **options,
        )


def api_key(key_file: Path) -> str:
    """$SHOPREC_API_KEY, else the key kept in ``key_file``, generated into a new 0600 file on first use.

    Only the file's path is printed: a key printed once ends up in logs, scrollback and screen shares.
    """
    if key := os.environ.get(API_KEY_ENV):
        return key
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(24))
    if stat.S_IMODE(key_file.stat().st_mode) & 0o077:
        raise ValueError(f"{key_file} holds the API key but others may read it: chmod 600 {key_file}")
    key = key_file.read_text().strip()
    if not key:
        raise ValueError(f"{key_file} is empty: delete it to have a new key generated, or set {API_KEY_ENV}")
    console.print(
        f"[yellow]{API_KEY_ENV} is not set; the API key is in {key_file}[/yellow]\n"
        f"  export {API_KEY_ENV}=$(cat {key_file})"
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


def _announce_when_up(base: str, settings: ServingSettings, show_assistant: bool) -> None:
    """Print the example commands once the API answers (workers load the model first), with two real item ids:
    the cold-start feed of a user nobody has seen."""
    headers = {API_KEY_HEADER: settings.api_key} if settings.read_key_required and settings.api_key else {}
    feed = urllib.request.Request(f"{base}/v1/users/{urllib.parse.quote(NOBODY)}/recommendations?k=2", headers=headers)
    deadline = time.monotonic() + WORKER_START_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(feed) as answer:
                items = [item["item_id"] for item in json.load(answer)["items"]]
        except OSError:
            time.sleep(0.5)
            continue
        if len(items) == 2:
            console.print(f"[green]serving on {base}[/green] (docs: {base}/docs)")
            console.print("\n".join(example_commands(base, items, settings.read_key_required)), markup=False)
            if show_assistant:
                show_assistant_exchanges(base, settings, items[0])
        return


ASSISTANT_EXAMPLES = ("A moisturizer for dry skin under $30", "适合干性皮肤的保湿霜，200元以内")
PRODUCT_QUESTION = "What is it made of?"


def show_assistant_exchanges(base: str, settings: ServingSettings, item: str) -> None:
    """The demo's last words: an English and a Chinese chat turn and a product question, through the running API,
    printed as a shopper would read them (or why the assistant is unavailable)."""
    headers = {API_KEY_HEADER: settings.api_key or "", "Content-Type": "application/json"}

    def post(path: str, body: dict[str, object]) -> dict[str, Any]:
        request = urllib.request.Request(f"{base}{path}", json.dumps(body).encode(), headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=300) as answer:
                return dict(json.load(answer))
        except urllib.error.HTTPError as refused:
            return {"error": json.load(refused)["error"]["message"]}

    for message in ASSISTANT_EXAMPLES:
        turn = post("/v1/chat", {"message": message})
        console.print(f"\n[bold]shopper:[/bold] {message}", highlight=False)
        if "error" in turn:
            console.print(f"[yellow]{turn['error']}[/yellow]")
            return
        remark = turn["first_remark_ms"]
        timing = f"items {turn['first_token_ms'] / 1e3:.1f} s" + (f", remark {remark / 1e3:.1f} s" if remark else "")
        console.print(f"[bold]assistant[/bold] ({turn['model']}, {timing}): {turn['answer']}", highlight=False)
    answer = post(f"/v1/items/{urllib.parse.quote(item, safe='')}/ask", {"question": PRODUCT_QUESTION})
    console.print(f"\n[bold]question about {item}:[/bold] {PRODUCT_QUESTION}", highlight=False)
    console.print(f"[bold]answer:[/bold] {answer.get('answer', answer.get('error'))}", highlight=False)


# Prints the URL-quoted id of the first item of a feed read from stdin.
_FIRST_ITEM = (
    'import json, sys, urllib.parse; print(urllib.parse.quote(json.load(sys.stdin)["items"][0]["item_id"], safe=""))'
)


def example_commands(base: str, items: Sequence[str], read_key_required: bool) -> list[str]:
    """Shell commands that work as printed: a new user's views of two real catalog items, then that user's feed
    (already personal, no retraining), the explanation of the top item of that feed (read from the feed when the
    command runs, since only the server knows it), similar items, searches in English and Chinese, metrics."""
    first, second = items
    key = f'-H "{API_KEY_HEADER}: ${API_KEY_ENV}" '
    reads = key if read_key_required else ""
    views = [{"user_id": "demo-user", "item_id": item, "type": "view"} for item in (first, second)]
    events = json.dumps({"events": views})
    feed = f"{base}/v1/users/demo-user/recommendations"
    return [
        f"  curl -X POST {key}-H 'Content-Type: application/json' {base}/v1/events -d '{events}'",
        f"  curl {reads}'{feed}?k=5'",
        f"  top=$(curl -s {reads}'{feed}?k=1' | python3 -c '{_FIRST_ITEM}')",
        f'  curl {reads}"{feed}/$top/explain"',
        f"  curl {reads}'{base}/v1/items/{urllib.parse.quote(first, safe='')}/similar?k=5&user_id=demo-user'",
        f"  curl {reads}'{base}/v1/search?q=moisturizer+for+dry+skin&k=5'",
        f"  curl {reads}-G '{base}/v1/search' --data-urlencode 'q=指甲油' --data-urlencode 'k=5'",
        f"  curl '{base}/metrics'",
        f"  kill -HUP {os.getpid()}   # reload the model",
    ]
