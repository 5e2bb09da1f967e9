"""A real `shoprec serve` process, killed with SIGKILL while it takes events: every acknowledged event survives, on
SQLite and on PostgreSQL. And a real two-worker server: both processes serve what either was sent, and a reload
restarts them without a failed request.

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
from collections.abc import Callable, Iterator
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
def serving(
    model_dir: Path, url: str, cache_dir: Path, log: Path, workers: int = 1
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`shoprec serve` on a free port, every worker started and healthy when this yields, killed (if still alive)
    when it ends."""
    port = free_port()
    command = [sys.executable, "-c", "from shoprec.cli import app; app()", "serve"]
    options = ["--model-dir", model_dir, "--database-url", url, "--cache-dir", cache_dir, "--port", port]
    options += ["--workers", workers]
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
                started = log.read_text().count("Application startup complete") >= workers
                if started and httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield process, base
    finally:
        if process.poll() is None:
            process.terminate()  # workers too: killing only their supervisor would leave them serving
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait(timeout=30)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_seeded_store_url(request: pytest.FixtureRequest, seed_url: Callable[[str], str]) -> str:
    """A fresh store of each backend, seeded with the serving slice."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("seeded_store_url"))
    return seed_url(str(request.getfixturevalue("postgres_url")))


@pytest.mark.slow
def test_acknowledged_events_survive_sigkill(
    model_dir: Path, any_seeded_store_url: str, cache_dir: Path, tmp_path: Path, pseudonymize: Pseudonymizer
) -> None:
    log = tmp_path / "server.log"
    acked: dict[str, list[str]] = {}  # user -> items, for every batch the server acknowledged
    with serving(model_dir, any_seeded_store_url, cache_dir, log) as (process, base):
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
                    assert response.json() == {"stored": BATCH, "rejected": [], "withheld": 0}
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

    with serving(model_dir, any_seeded_store_url, cache_dir, log) as (process, base):
        assert httpx.get(f"{base}/health").json()["events"] >= events_before + BATCH * len(acked)
        store = Store(any_seeded_store_url)
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


@pytest.mark.slow
def test_two_workers_serve_one_catalog_and_restart_without_failing_a_request(
    model_dir: Path, seeded_store_url: str, cache_dir: Path, tmp_path: Path
) -> None:
    """Each request below opens its own connection, so the two worker processes share the requests between them;
    an item or an event that reached only one of them would fail about half of the reads."""
    log = tmp_path / "server.log"
    reads = 24
    with serving(model_dir, seeded_store_url, cache_dir, log, workers=2) as (_process, base):
        assert log.read_text().count("Started server process") == 2
        twin = httpx.get(f"{base}/v1/users/nobody/recommendations", params={"k": 1}).json()["items"][0]
        new_item = {"item_id": "TWO-WORKERS-NEW", "title": twin["title"], "category": twin["category"]}
        written = httpx.post(f"{base}/v1/items", json={"items": [new_item]}, headers={"X-API-Key": KEY})
        assert written.status_code == 200, written.text
        events = [{"user_id": "two-workers-user", "item_id": "TWO-WORKERS-NEW", "type": "view"}]
        written = httpx.post(f"{base}/v1/events", json={"events": events}, headers={"X-API-Key": KEY})
        assert written.json() == {"stored": 1, "rejected": [], "withheld": 0}
        for _ in range(reads):
            assert httpx.get(f"{base}/v1/items/TWO-WORKERS-NEW/similar", params={"k": 1}).status_code == 200
            feed = httpx.get(f"{base}/v1/users/two-workers-user/recommendations").json()
            assert not feed["cold_start"]

        metrics = httpx.get(f"{base}/metrics").text  # one worker answers for both
        similar = 'shoprec_requests_total{method="GET",route="/v1/items/{item_id}/similar",status="200"}'
        assert f"{similar} {float(reads)}" in metrics
        assert metrics.count("shoprec_model_info{") == 1

        reload = httpx.post(f"{base}/v1/admin/reload", headers={"X-API-Key": KEY})
        assert (reload.status_code, reload.json()["workers"]) == (202, 2)
        deadline = time.monotonic() + STARTUP_SECONDS
        while log.read_text().count("Finished server process") < 2:  # both old workers have handed over and left
            assert time.monotonic() < deadline, log.read_text()
            assert httpx.get(f"{base}/health", timeout=30).status_code == 200
        assert log.read_text().count("Started server process") == 4
        assert httpx.get(f"{base}/v1/items/TWO-WORKERS-NEW/similar").status_code == 200


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
