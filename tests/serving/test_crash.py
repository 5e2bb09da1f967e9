"""A real `shoprec serve` process, killed with SIGKILL while it takes events: every acknowledged event survives.

An acknowledgement is a promise that the events are durable, so the check is against the store after a restart,
not against anything the dead process held in memory.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from shoprec.cli.serve import _seed
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.storage.store import Store

KEY = "crash-test-key"
BATCH = 20
STARTUP_SECONDS = 180
ACKED_BEFORE_KILL = 6


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(model_dir: Path, url: str, cache_dir: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`shoprec serve` on a free port, healthy when this yields, killed (if still alive) when it ends."""
    port = free_port()
    command = [sys.executable, "-c", "from shoprec.cli import app; app()", "serve"]
    options = ["--model-dir", model_dir, "--database-url", url, "--cache-dir", cache_dir, "--port", port]
    with log.open("ab") as output:
        process = subprocess.Popen(
            [*command, *map(str, options)],
            env={**os.environ, "SHOPREC_API_KEY": KEY},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, f"server exited with {process.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no /health after {STARTUP_SECONDS}s:\n{log.read_text()}"
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield process, base
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


@pytest.mark.slow
def test_acknowledged_events_survive_sigkill(
    model_dir: Path, seeded_store_url: str, cache_dir: Path, tmp_path: Path, pseudonymize: Pseudonymizer
) -> None:
    log = tmp_path / "server.log"
    acked: dict[str, list[str]] = {}  # user -> items, for every batch the server acknowledged
    with serving(model_dir, seeded_store_url, cache_dir, log) as (process, base):
        events_before = httpx.get(f"{base}/health").json()["events"]
        feed = httpx.get(f"{base}/v1/users/nobody/recommendations", params={"k": BATCH}).json()["items"]
        items = [item["item_id"] for item in feed]

        def post_batches(writer: int) -> None:
            """Post until the server dies; a batch counts only once its 200 has arrived."""
            with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=30) as client:
                for batch in range(10_000):
                    user = f"crash-{writer}-{batch}"
                    events = [{"user_id": user, "item_id": item, "type": "view"} for item in items]
                    try:
                        response = client.post("/v1/events", json={"events": events})
                    except httpx.TransportError:
                        return
                    assert response.json() == {"stored": BATCH, "rejected": []}
                    acked[user] = items

        writers = [threading.Thread(target=post_batches, args=(n,)) for n in range(2)]
        for writer in writers:
            writer.start()
        while len(acked) < ACKED_BEFORE_KILL and all(writer.is_alive() for writer in writers):
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        for writer in writers:
            writer.join(timeout=60)
        assert process.wait(timeout=30) == -signal.SIGKILL
    assert len(acked) >= ACKED_BEFORE_KILL, log.read_text()

    with serving(model_dir, seeded_store_url, cache_dir, log) as (process, base):
        assert httpx.get(f"{base}/health").json()["events"] >= events_before + BATCH * len(acked)
        store = Store(seeded_store_url)
        try:
            for user, posted in acked.items():
                assert [event.item_id for event in store.history(pseudonymize(user))] == posted, user
        finally:
            store.close()
        some_user = next(iter(acked))
        assert not httpx.get(f"{base}/v1/users/{some_user}/recommendations").json()["cold_start"]

        process.send_signal(signal.SIGHUP)  # reload the model in place; the server keeps answering meanwhile
        deadline = time.monotonic() + 60
        while "reloaded" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            assert httpx.get(f"{base}/health").status_code == 200
            time.sleep(0.2)


def test_data_seeds_only_an_empty_store(beauty_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'seeded.sqlite3'}"
    _seed(url, beauty_dir)
    store = Store(url)
    try:
        counts = store.count_items(), store.count_events()
        assert counts[0] > 1_000 and counts[1] > 10_000
        _seed(url, beauty_dir)  # a restart with the same --data leaves the store alone
        assert (store.count_items(), store.count_events()) == counts
    finally:
        store.close()
