"""One real llama.cpp server on SmolLM2-135M for the whole session (loads in about a second)."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from conftest import missing
from shoprec.data.dataset import Dataset
from shoprec.data.sources import load_source
from shoprec.encoders.cache import encode_catalog
from shoprec.encoders.text import HashingEncoder
from shoprec.llm.assistant import Shop
from shoprec.llm.backends import OpenAIChat
from shoprec.llm.errors import ModelNotInstalled
from shoprec.llm.local import LocalServer
from shoprec.llm.settings import LLMSettings
from shoprec.models.base import Recommender, TrainData
from shoprec.models.itemknn import ItemKNN
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.ranking.items import catalog_records, model_items
from shoprec.ranking.recommend import rankers_for

REES46 = Path(__file__).resolve().parents[1] / "fixtures" / "rees46_sample" / "2019-Oct-head.csv"
T = TypeVar("T")


def with_chat(
    settings: LLMSettings,
    base_url: str,
    use: Callable[[OpenAIChat], Awaitable[T]],
    http: Callable[[], httpx.AsyncClient] | None = None,
) -> T:
    """Run ``use`` with a fresh client on its own event loop (a client belongs to one loop)."""

    async def run() -> T:
        async with OpenAIChat(settings, base_url, http=http() if http else None) as chat:
            return await use(chat)

    return asyncio.run(run())


class InFlight:
    """Counts requests on the wire through httpx event hooks: the transport's view, not the client's semaphore."""

    def __init__(self) -> None:
        self.sent = 0
        self.now = 0
        self.peak = 0

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(event_hooks={"request": [self._request], "response": [self._response]})

    async def _request(self, request: httpx.Request) -> None:
        self.sent += 1
        self.now += 1
        self.peak = max(self.peak, self.now)

    async def _response(self, response: httpx.Response) -> None:
        self.now -= 1


@pytest.fixture(scope="module")
def default_model() -> Iterator[tuple[LLMSettings, LocalServer]]:
    """The default model (Qwen2.5-Coder-1.5B) on its own server, in the default model cache."""
    try:
        import xllamacpp  # noqa: F401
    except ImportError:
        missing("the local LLM backend needs: pip install 'shoprec[llm]'")
    settings = LLMSettings(max_concurrency=1, max_tokens=16)  # the default model, in the default model cache
    try:
        server = LocalServer.from_settings(settings)
    except ModelNotInstalled as error:
        missing(str(error))
    with server:
        yield settings, server


def rees46_dataset(directory: Path, pseudonymize: Pseudonymizer, rows: int = 1500) -> Dataset:
    """The first ``rows`` REES46 events in shoprec's own layout: events with timestamps and types, a catalog with
    category path, brand and USD price (no titles)."""
    events, catalog = directory / "events.csv", directory / "catalog.csv"
    seen: set[str] = set()
    with REES46.open(encoding="utf-8") as source, events.open("w") as e, catalog.open("w") as c:
        e.write("user_id,item_id,event_type,timestamp\n")
        c.write("item_id,category,brand,price\n")
        for row in list(csv.DictReader(source))[:rows]:
            stamp = row["event_time"].replace(" UTC", "+00:00")  # the readers take ISO-8601, not a " UTC" suffix
            e.write(f"{row['user_id']},{row['product_id']},{row['event_type']},{stamp}\n")
            if row["product_id"] not in seen:
                seen.add(row["product_id"])
                category = " > ".join(row["category_code"].split("."))
                c.write(f"{row['product_id']},{category},{row['brand']},{row['price']}\n")
    dataset, _ = load_source(directory, pseudonymize)
    return dataset


@pytest.fixture(scope="session")
def rees46(tmp_path_factory: pytest.TempPathFactory, pseudonymize: Pseudonymizer) -> Dataset:
    return rees46_dataset(tmp_path_factory.mktemp("rees46"), pseudonymize, rows=5019)


def shop_of(dataset: Dataset, model: Recommender) -> Shop:
    """The dataset's whole catalog, ranked by ``model``; search by hashed words (no encoder model to load)."""
    encoder = HashingEncoder()
    search = encode_catalog(dataset.catalog, encoder)
    items = model_items(model, dataset.items.ids, search, records=catalog_records(dataset, dataset.items.ids))
    return Shop.of(items, rankers_for(model, lambda text: encoder.encode([text], "query")[0]))


def fitted(dataset: Dataset) -> ItemKNN:
    model = ItemKNN()
    model.fit(TrainData(dataset.items.size, dataset.sequences))
    return model


@pytest.fixture(scope="session")
def beauty_shop(beauty: Dataset) -> Shop:
    """The 2,000-user Beauty slice: English titles and category paths, no brands, no prices."""
    return shop_of(beauty, fitted(beauty))


@pytest.fixture(scope="session")
def rees46_shop(rees46: Dataset) -> Shop:
    """REES46 events: category paths, brands and USD prices, no titles."""
    return shop_of(rees46, fitted(rees46))
