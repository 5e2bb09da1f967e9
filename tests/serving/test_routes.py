"""The routes over any registry model, with the hashing text encoder: no sentence model is loaded here.

Every model shoprec trains can be served (feed, similar items, search, explanations); the routes take the pipeline
through a dependency, so a test swaps it; and a slow feed batch does not stall the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from serving.conftest import CLASSIC_OPTIONS
from shoprec.data.dataset import Dataset
from shoprec.models.registry import MODELS, create_model
from shoprec.serving.app import create_app
from shoprec.serving.deps import get_pipeline
from shoprec.serving.pipeline import FeedRequest, Pipeline
from shoprec.serving.schemas import RecommendationList
from shoprec.serving.settings import ServingSettings
from shoprec.storage.store import StoreBusy

KEY = "route-key"
# Every registry model that reads no item text: served with the hashing encoder for search.
CLASSIC = tuple(name for name in MODELS if not create_model(name, CLASSIC_OPTIONS.get(name, {})).uses_item_text)


def app_for(model_dir: Path, store_url: str, cache_dir: Path) -> FastAPI:
    return create_app(
        ServingSettings(
            model_dir=model_dir, database_url=store_url, api_key=KEY, search_encoder="hashing", cache_dir=cache_dir
        )
    )


@pytest.fixture
def client_for(
    classic_dir: Callable[[str], Path], seeded_store_url: str, cache_dir: Path
) -> Iterator[Callable[[str], TestClient]]:
    clients: list[TestClient] = []

    def start(name: str) -> TestClient:
        client = TestClient(app_for(classic_dir(name), seeded_store_url, cache_dir))
        clients.append(client.__enter__())
        return clients[-1]

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def history_of_a_user(data: Dataset, min_items: int = 5) -> list[str]:
    row = int(np.flatnonzero(data.sequences.lengths() >= min_items)[0])
    return data.items.ids_of(data.sequences.row(row))


@pytest.mark.parametrize("name", CLASSIC)
def test_any_registry_model_is_served(
    name: str, client_for: Callable[[str], TestClient], serving_data: Dataset
) -> None:
    client = client_for(name)
    history = history_of_a_user(serving_data)
    # The store holds the slice's users under their stored pseudonyms; a raw id is pseudonymised at the door, so
    # post this user's history again under a raw id of our own.
    raw = f"shopper-{name}"
    events = [
        {"user_id": raw, "item_id": item, "type": "purchase", "timestamp": 1_000.0 + i}
        for i, item in enumerate(history)
    ]
    assert client.post("/v1/events", json={"events": events}, headers={"X-API-Key": KEY}).json()["stored"] == len(
        history
    )

    feed = client.get(f"/v1/users/{raw}/recommendations", params={"k": 8}).json()
    assert len(feed["items"]) == 8 and feed["model_version"].startswith(name)
    assert not {item["item_id"] for item in feed["items"]} & set(history)
    assert feed["cold_start"] is (name == "pop")
    similar = client.get(f"/v1/items/{history[0]}/similar", params={"k": 5}).json()
    assert len(similar["items"]) == 5 and history[0] not in {item["item_id"] for item in similar["items"]}
    found = client.get("/v1/search", params={"q": "shampoo", "k": 5}).json()["items"]
    assert found and all("shampoo" in (item["title"] or "").lower() for item in found[:3])
    top = feed["items"][0]["item_id"]
    explained = client.get(f"/v1/users/{raw}/recommendations/{top}/explain").json()
    assert explained["rank"] == 1 and explained["score"] == pytest.approx(feed["items"][0]["score"], rel=1e-5)


def test_routes_take_the_pipeline_through_a_dependency(
    classic_dir: Callable[[str], Path], seeded_store_url: str, cache_dir: Path
) -> None:
    app = app_for(classic_dir("itemknn"), seeded_store_url, cache_dir)
    with TestClient(app) as client:
        other = Pipeline.load(
            classic_dir("pop"), app.state.runtime.store, search_encoder="hashing", cache_dir=cache_dir
        )
        app.dependency_overrides[get_pipeline] = lambda: other
        item = client.get("/v1/search", params={"q": "nail polish", "k": 1}).json()["items"][0]["item_id"]
        assert client.get(f"/v1/items/{item}/similar").json()["model_version"].startswith("pop")
        app.dependency_overrides.clear()
        assert client.get(f"/v1/items/{item}/similar").json()["model_version"].startswith("itemknn")


def race(app: FastAPI, slow_path: str, probe_path: str) -> tuple[float, float]:
    """Seconds until each of two concurrent GETs is answered (both must succeed), from one start."""

    async def both() -> tuple[float, float]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shoprec") as concurrent:
            started = time.perf_counter()

            async def timed(path: str) -> float:
                response = await concurrent.get(path)
                assert response.status_code == 200, response.text
                return time.perf_counter() - started

            slow, probe = await asyncio.gather(timed(slow_path), timed(probe_path))
            return slow, probe

    return asyncio.run(both())


def test_a_slow_feed_batch_does_not_stall_other_requests(
    classic_dir: Callable[[str], Path], seeded_store_url: str, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_for(classic_dir("itemknn"), seeded_store_url, cache_dir)
    with TestClient(app):
        pipeline: Pipeline = app.state.runtime.pipeline
        fast = pipeline.recommend_many

        def slow(requests: Sequence[FeedRequest]) -> list[RecommendationList]:
            time.sleep(1.0)  # a stage that blocks, as a store read on a busy disk would
            return fast(requests)

        monkeypatch.setattr(pipeline, "recommend_many", slow)
        feed_seconds, health_seconds = race(app, "/v1/users/nobody/recommendations", "/health")
    assert feed_seconds >= 1.0
    assert health_seconds < 0.5, "the event loop was blocked by the feed batch"


def test_a_slow_catalog_read_in_a_search_does_not_stall_other_requests(
    classic_dir: Callable[[str], Path], seeded_store_url: str, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Search reads the catalog's revision (and its language) before it ranks: off the event loop too."""
    app = app_for(classic_dir("itemknn"), seeded_store_url, cache_dir)
    with TestClient(app) as client:
        client.get("/openapi.json")  # built once: the probe below is then pure event-loop work
        catalog = app.state.runtime.pipeline.catalog
        fast = catalog.snapshot

        def slow() -> object:
            time.sleep(0.5)  # a store read on a busy disk
            return fast()

        monkeypatch.setattr(catalog, "snapshot", slow)
        search_seconds, probe_seconds = race(app, "/v1/search?q=nail+polish", "/openapi.json")
    assert search_seconds >= 0.5
    assert probe_seconds < 0.3, "the event loop was blocked by the search's catalog read"


def test_an_unavailable_item_is_never_listed_until_it_is_back(
    classic_dir: Callable[[str], Path], seeded_store_url: str, cache_dir: Path
) -> None:
    with TestClient(app_for(classic_dir("itemknn"), seeded_store_url, cache_dir)) as client:
        popular = client.get("/v1/users/nobody/recommendations", params={"k": 3}).json()["items"]
        top = popular[0]
        item = {key: top[key] for key in ("item_id", "title", "category")}

        def everywhere() -> set[str]:
            feed = client.get("/v1/users/nobody/recommendations", params={"k": 3}).json()["items"]
            similar = client.get(f"/v1/items/{popular[1]['item_id']}/similar", params={"k": 50}).json()["items"]
            found = client.get("/v1/search", params={"q": top["title"], "k": 50}).json()["items"]
            return {i["item_id"] for i in feed + similar + found}

        assert top["item_id"] in everywhere()
        written = client.post("/v1/items", json={"items": [item | {"available": False}]}, headers={"X-API-Key": KEY})
        assert written.json() == {"stored": 1, "new": 0}
        assert top["item_id"] not in everywhere()
        client.post("/v1/items", json={"items": [item]}, headers={"X-API-Key": KEY})  # back in stock
        assert top["item_id"] in everywhere()


def test_a_busy_store_is_a_503_with_retry_after(
    classic_dir: Callable[[str], Path], seeded_store_url: str, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_for(classic_dir("itemknn"), seeded_store_url, cache_dir)
    with TestClient(app) as client:
        item = client.get("/v1/users/nobody/recommendations", params={"k": 1}).json()["items"][0]["item_id"]

        def busy(events: object) -> int:
            raise StoreBusy("database is locked")

        monkeypatch.setattr(app.state.runtime.store, "add_events", busy)
        answer = client.post(
            "/v1/events", json={"events": [{"user_id": "u", "item_id": item}]}, headers={"X-API-Key": KEY}
        )
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert answer.json()["error"]["status"] == 503
