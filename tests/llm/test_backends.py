"""The chat client against a real llama.cpp server on SmolLM2-135M: what features above it rely on."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time

import pytest
from pydantic import BaseModel, ValidationError

from shoprec.llm.backends import ChatOptions, ChatResult, JsonResult, Message, OpenAIChat, chat_once, open_backend
from shoprec.llm.errors import LLMBadOutput, LLMBadRequest, LLMTimeout, LLMUnavailable
from shoprec.llm.local import LocalServer
from shoprec.llm.settings import LLMSettings

from .conftest import InFlight, with_chat

HELLO: list[Message] = [{"role": "user", "content": "Write one sentence about the sea."}]
GREEDY = ChatOptions(temperature=0, seed=7)

KNOWN = re.escape("known models: qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, smollm2-135m")


def test_chat_answers_with_usage_and_the_model_name(server: LocalServer, llm_settings: LLMSettings) -> None:
    result = with_chat(llm_settings, server.base_url, lambda chat: chat.chat(HELLO, GREEDY))
    assert result.text.strip()
    assert result.model == "smollm2-135m"
    assert result.finish_reason in {"stop", "length"}
    assert result.usage.prompt_tokens > 5
    assert 0 < result.usage.completion_tokens <= llm_settings.max_tokens
    assert result.latency_s > 0
    assert result.first_token_s is None


def test_token_budget_cuts_the_answer(server: LocalServer, llm_settings: LLMSettings) -> None:
    short = with_chat(llm_settings, server.base_url, lambda chat: chat.chat(HELLO, ChatOptions(max_tokens=3)))
    assert (short.usage.completion_tokens, short.finish_reason) == (3, "length")
    capped = llm_settings.model_copy(update={"max_tokens": 5})
    greedy = with_chat(capped, server.base_url, lambda chat: chat.chat(HELLO, ChatOptions(max_tokens=1000)))
    assert greedy.usage.completion_tokens == 5  # the settings' budget caps what a request asks for


def test_stream_deltas_join_to_the_same_answer(server: LocalServer, llm_settings: LLMSettings) -> None:
    async def both(chat: OpenAIChat) -> tuple[ChatResult, list[str], ChatResult]:
        whole = await chat.chat(HELLO, GREEDY)
        async with chat.stream(HELLO, GREEDY) as stream:
            deltas = [delta async for delta in stream]
        return whole, deltas, stream.result

    whole, deltas, streamed = with_chat(llm_settings, server.base_url, both)
    assert len(deltas) > 3
    assert "".join(deltas) == streamed.text == whole.text
    assert streamed.finish_reason == whole.finish_reason
    assert streamed.usage.completion_tokens == whole.usage.completion_tokens
    assert streamed.model == "smollm2-135m"
    assert streamed.first_token_s is not None
    assert 0 < streamed.first_token_s < streamed.latency_s


class Product(BaseModel):
    name: str
    price: float
    in_stock: bool


PRODUCT: list[Message] = [{"role": "user", "content": "Describe one shampoo as JSON: name, price, in_stock."}]


def test_json_schema_answer_parses_and_validates(server: LocalServer, llm_settings: LLMSettings) -> None:
    schema = Product.model_json_schema()
    result = with_chat(llm_settings, server.base_url, lambda chat: chat.chat_json(PRODUCT, schema, GREEDY))
    assert isinstance(result, JsonResult)
    product = Product.model_validate(result.value)
    assert product.name
    assert result.chat.finish_reason == "stop"


def test_a_stream_under_a_schema_grows_into_the_schemas_json(server: LocalServer, llm_settings: LLMSettings) -> None:
    """What the assistant streams from: deltas of JSON whose enum field can only name the given values."""
    schema = {
        "type": "object",
        "properties": {"id": {"enum": ["A7", "B9"]}, "name": {"type": "string", "maxLength": 20}},
        "required": ["id", "name"],
        "additionalProperties": False,
    }

    async def stream(chat: OpenAIChat) -> tuple[list[str], ChatResult]:
        async with chat.stream(PRODUCT, GREEDY, schema) as answer:
            return [delta async for delta in answer], answer.result

    roomy = llm_settings.model_copy(update={"max_tokens": 64})
    deltas, result = with_chat(roomy, server.base_url, stream)
    value = json.loads("".join(deltas))
    assert len(deltas) > 3 and value["id"] in ("A7", "B9") and len(value["name"]) <= 20
    assert result.finish_reason == "stop"


def test_json_cut_off_is_a_typed_error(server: LocalServer, llm_settings: LLMSettings) -> None:
    schema = Product.model_json_schema()
    options = ChatOptions(max_tokens=4)
    with pytest.raises(LLMBadOutput, match=r"not JSON \(cut off by max_tokens\)"):
        with_chat(llm_settings, server.base_url, lambda chat: chat.chat_json(PRODUCT, schema, options))


def test_top_logprobs_are_typed_and_greedy_takes_the_top(server: LocalServer, llm_settings: LLMSettings) -> None:
    options = ChatOptions(temperature=0, max_tokens=8, top_logprobs=3)
    result = with_chat(llm_settings, server.base_url, lambda chat: chat.chat(HELLO, options))
    assert len(result.logprobs) == result.usage.completion_tokens == 8
    assert "".join(token.token for token in result.logprobs) == result.text
    for token in result.logprobs:
        assert len(token.top_logprobs) == 3
        assert token.logprob <= 0
        alternatives = [top.logprob for top in token.top_logprobs]
        assert alternatives == sorted(alternatives, reverse=True)
        assert token.top_logprobs[0].token == token.token  # temperature 0 picks the most likely token


def test_bad_request_is_typed_and_not_retried(server: LocalServer, llm_settings: LLMSettings) -> None:
    too_long: list[Message] = [{"role": "user", "content": "sea " * (2 * llm_settings.context_tokens)}]
    wire = InFlight()
    with pytest.raises(LLMBadRequest, match="exceeds the available context size") as raised:
        with_chat(llm_settings, server.base_url, lambda chat: chat.chat(too_long), http=wire.client)
    assert raised.value.status == 400
    assert wire.sent == 1


def test_time_budget_raises_timeout(server: LocalServer, llm_settings: LLMSettings) -> None:
    tiny = ChatOptions(max_tokens=48, time_budget_s=0.05)

    async def stream_all(chat: OpenAIChat) -> list[str]:
        async with chat.stream(HELLO, tiny) as stream:
            return [delta async for delta in stream]

    for ask in (lambda chat: chat.chat(HELLO, tiny), stream_all):
        started = time.perf_counter()
        with pytest.raises(LLMTimeout, match=r"time budget of 0\.05 s"):
            with_chat(llm_settings, server.base_url, ask)
        assert time.perf_counter() - started < 1.0


def test_time_budget_ends_a_stream_midway(server: LocalServer, llm_settings: LLMSettings) -> None:
    # SmolLM2 repeats the word up to max_tokens (about 8 s); asked to count to 500 it stopped at 20 (1.2 s)
    count: list[Message] = [{"role": "user", "content": "Repeat the word hello 400 times."}]
    settings = llm_settings.model_copy(update={"max_tokens": 600})
    deltas: list[str] = []

    async def stream_all(chat: OpenAIChat) -> None:
        async with chat.stream(count, ChatOptions(time_budget_s=1.5)) as stream:
            async for delta in stream:
                deltas.append(delta)

    started = time.perf_counter()
    with pytest.raises(LLMTimeout, match=r"time budget of 1\.5 s"):
        with_chat(settings, server.base_url, stream_all)
    assert 1.5 <= time.perf_counter() - started < 2.5
    assert len(deltas) >= 2  # text flowed before the budget ran out (few pieces on loaded cores)


@pytest.mark.parametrize("cap", [1, 3])
def test_concurrency_cap_holds_on_the_wire(server: LocalServer, llm_settings: LLMSettings, cap: int) -> None:
    settings = llm_settings.model_copy(update={"max_concurrency": cap})  # the server has 4 slots
    wire = InFlight()

    async def burst(chat: OpenAIChat) -> list[ChatResult]:
        return await asyncio.gather(*(chat.chat(HELLO, ChatOptions(max_tokens=6)) for _ in range(6)))

    results = with_chat(settings, server.base_url, burst, http=wire.client)
    assert len(results) == 6
    assert wire.sent == 6
    assert wire.peak == cap


def test_unreachable_server_is_unavailable_after_retries(llm_settings: LLMSettings) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = llm_settings.model_copy(update={"retries": 2, "backoff_s": 0.01})
    wire = InFlight()
    with pytest.raises(LLMUnavailable, match=r"cannot reach .* \(after 3 attempt\(s\)\)"):
        with_chat(settings, f"http://127.0.0.1:{port}/v1", lambda chat: chat.chat(HELLO), http=wire.client)
    assert wire.sent == 3


def test_none_backend_answers_unavailable() -> None:
    async def ask() -> None:
        async with open_backend(LLMSettings(backend="none")) as backend:
            with pytest.raises(LLMUnavailable, match="backend = 'none'"):
                await backend.chat(HELLO)
            with pytest.raises(LLMUnavailable, match="backend = 'none'"):
                await backend.chat_json(HELLO, Product.model_json_schema())
            with pytest.raises(LLMUnavailable, match="backend = 'none'"):
                backend.stream(HELLO)

    asyncio.run(ask())


def test_chat_once_starts_and_stops_its_own_local_server(llm_settings: LLMSettings) -> None:
    """The CLI path: settings in, answer out, from a server of its own each time, so the same greedy answer twice.

    Not compared with the session's server: its slots reuse cached prompt prefixes, which on some CPUs (AMD EPYC)
    changes the greedy text."""
    first = chat_once(llm_settings, HELLO, GREEDY)
    assert first.text.strip() and first.model == llm_settings.model
    assert chat_once(llm_settings, HELLO, GREEDY).text == first.text


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValidationError, match="needs base_url"):
        LLMSettings(backend="openai")
    with pytest.raises(ValidationError, match=KNOWN):
        LLMSettings(model="gpt-4o")
    with pytest.raises(ValidationError, match="extra_forbidden"):
        LLMSettings(max_tokkens=5)  # type: ignore[call-arg]
    remote = LLMSettings(backend="openai", base_url="https://llm.example/v1", model="gpt-4o")
    assert remote.model == "gpt-4o"


def test_api_key_comes_from_the_environment_and_stays_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPREC_LLM_BACKEND", "openai")
    monkeypatch.setenv("SHOPREC_LLM_BASE_URL", "https://llm.example/v1")
    monkeypatch.setenv("SHOPREC_LLM_API_KEY", "sk-test-123")
    settings = LLMSettings.from_environment(model="gpt-4o")
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "sk-test-123"
    assert "sk-test-123" not in repr(settings)
