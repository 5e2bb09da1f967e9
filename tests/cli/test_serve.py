"""`shoprec serve` as an operator meets it: where the generated API key goes (never to the screen), the flag that
makes reads need it, and the example commands it prints, run by bash against a live HTTP server."""

from __future__ import annotations

import importlib
import os
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from typer.testing import CliRunner

from shoprec.cli import app as cli
from shoprec.serving.settings import API_KEY_ENV, ServingSettings

serve = importlib.import_module("shoprec.cli.serve")  # the package's `serve` attribute is the command function

KEY = "operator-key"
COLD = ["B00 cold-1", "B00 cold-2"]  # the feed of a user nobody has seen
TOP = "top item #1 ä"  # the first item of demo-user's feed once they viewed something: quoting matters


def test_a_generated_key_goes_to_a_0600_file_and_only_its_path_is_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    key_file = tmp_path / "runs" / "serve" / "api.key"
    key = serve.api_key(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and key_file.read_text() == key and len(key) >= 24
    assert serve.api_key(key_file) == key, "a restart keeps the key its clients hold"
    printed = "".join(capsys.readouterr())
    assert str(key_file) in printed and key not in printed


def test_the_environment_key_wins_and_no_file_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, KEY)
    assert serve.api_key(tmp_path / "api.key") == KEY and not (tmp_path / "api.key").exists()


def test_a_key_file_others_may_read_or_an_empty_one_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    shared = tmp_path / "shared.key"
    shared.write_text("k" * 32)
    shared.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        serve.api_key(shared)
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(ValueError, match="empty"):
        serve.api_key(empty)


@pytest.mark.parametrize("flag", [True, False])
def test_require_key_for_reads_reaches_the_settings(
    flag: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    served: list[ServingSettings] = []
    monkeypatch.setattr(serve, "_serve", lambda settings, _host, _port: served.append(settings))
    monkeypatch.setattr(serve, "_announce_when_up", lambda _base, _settings, _show_assistant: None)
    args = ["serve", "--model-dir", str(tmp_path), "--key-file", str(tmp_path / "api.key")]
    result = CliRunner().invoke(cli, [*args, "--require-key-for-reads"] if flag else args)
    assert result.exit_code == 0, result.output
    [settings] = served
    assert settings.read_key_required is flag and settings.api_key == (tmp_path / "api.key").read_text()
    assert settings.api_key not in result.output


@dataclass
class Shop:
    """A live HTTP server with the routes the example commands call; it records what they asked."""

    base: str
    explained: list[tuple[str, str]] = field(default_factory=list)  # (user, item) of each explain call
    keys: list[str | None] = field(default_factory=list)  # the X-API-Key of each read


@pytest.fixture
def shop() -> Iterator[Shop]:
    app = FastAPI()
    viewed: set[str] = set()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))

    def read(request: Request) -> None:
        shop.keys.append(request.headers.get("X-API-Key"))
        if request.headers.get("X-API-Key") != KEY:
            raise HTTPException(401)

    @app.post("/v1/events")
    async def events(request: Request) -> dict[str, Any]:
        viewed.update(event["user_id"] for event in (await request.json())["events"])
        return {"stored": 2, "rejected": []}

    @app.get("/v1/users/{user_id}/recommendations")
    def feed(user_id: str, request: Request, k: int = 10) -> dict[str, Any]:
        read(request)
        items = [TOP, "B00 second"] if user_id in viewed else COLD
        return {"items": [{"item_id": item} for item in items[:k]]}

    @app.get("/v1/users/{user_id}/recommendations/{item_id}/explain")
    def explain(user_id: str, item_id: str, request: Request) -> dict[str, str]:
        read(request)
        shop.explained.append((user_id, item_id))
        return {"item_id": item_id}

    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    shop = Shop(f"http://127.0.0.1:{port}")
    yield shop
    server.should_exit = True
    thread.join()


def test_the_printed_explain_command_explains_the_demo_users_top_item(
    shop: Shop, capsys: pytest.CaptureFixture[str]
) -> None:
    """With reads needing the key: the announcement waits for the feed with the key, and its first four commands
    (views, feed, top item, explain) explain the item the demo user's feed put first, not a cold-start one."""
    settings = ServingSettings(model_dir=Path("unused"), api_key=KEY, read_key_required=True)
    announcing = threading.Thread(target=serve._announce_when_up, args=(shop.base, settings, False), daemon=True)
    announcing.start()
    announcing.join(timeout=10)
    assert not announcing.is_alive(), "the announcement kept polling: its feed request lacked the key"
    printed = capsys.readouterr().err
    commands = [line.strip() for line in printed.splitlines() if line.startswith("  ")]
    assert KEY not in printed and f"{shop.base}/v1/users/demo-user/recommendations" in commands[1]
    script = "set -e\n" + "\n".join(commands[:4])
    subprocess.run(
        ["bash", "-c", script], env={**os.environ, API_KEY_ENV: KEY}, check=True, capture_output=True, timeout=60
    )
    assert shop.explained == [("demo-user", TOP)]
    assert shop.keys and set(shop.keys) == {KEY}
