"""One chat interface for everything above the LLM layer, and the OpenAI-compatible HTTP client behind it.

The same client talks to the local llama.cpp server (``local.py``) and to any remote OpenAI-compatible server.
Every request runs within limits the caller can rely on: at most ``max_concurrency`` in flight per client, at
most ``max_tokens`` generated, and one time budget for the whole request (waiting for a slot, retries and
generation together). Failures are typed (``errors.py``) so a route maps each to one HTTP status.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol, TypedDict, TypeVar

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shoprec.config import Config
from shoprec.llm.errors import LLMBadOutput, LLMBadRequest, LLMTimeout, LLMUnavailable
from shoprec.llm.local import LocalServer
from shoprec.llm.settings import LLMSettings


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatOptions(Config):
    """Per-request choices; ``None`` takes the backend's settings."""

    max_tokens: int | None = Field(default=None, ge=1)  # capped by the settings' max_tokens
    temperature: float = Field(default=0.0, ge=0)  # 0: the same prompt gives the same answer
    seed: int | None = None
    top_logprobs: int | None = Field(default=None, ge=0)  # alternatives per generated token; None: no logprobs
    stop: tuple[str, ...] = ()
    time_budget_s: float | None = Field(default=None, gt=0)


class _Wire(BaseModel):
    """The OpenAI wire format: fields we do not use are ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Usage(_Wire):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class TopLogprob(_Wire):
    token: str
    logprob: float


class TokenLogprob(_Wire):
    """One generated token, its log-probability and the most likely alternatives at its position."""

    token: str
    logprob: float
    top_logprobs: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True)
class ChatResult:
    text: str
    finish_reason: str  # "stop", or "length" when max_tokens cut it off
    usage: Usage
    model: str  # as the server names it
    latency_s: float  # from the call until the whole answer arrived, waiting for a slot included
    first_token_s: float | None = None  # streams: from the call until the first text arrived
    logprobs: tuple[TokenLogprob, ...] = ()  # one per generated token when ChatOptions.top_logprobs was set


@dataclass(frozen=True)
class JsonResult:
    value: Any  # the parsed JSON
    chat: ChatResult


class _Message(_Wire):
    content: str | None = None


class _Logprobs(_Wire):
    content: tuple[TokenLogprob, ...] = ()


class _Choice(_Wire):
    message: _Message
    finish_reason: str | None = None
    logprobs: _Logprobs | None = None


class _Completion(_Wire):
    model: str = ""
    choices: tuple[_Choice, ...] = Field(min_length=1)
    usage: Usage = Usage()


class _ChunkChoice(_Wire):
    delta: _Message = _Message()
    finish_reason: str | None = None


class _Chunk(_Wire):
    model: str = ""
    choices: tuple[_ChunkChoice, ...] = ()
    usage: Usage | None = None


class _ErrorDetail(_Wire):
    message: str


class _ErrorBody(_Wire):
    error: _ErrorDetail


class ChatBackend(Protocol):
    """What features above this layer (intent, assistant, routes) use to talk to a model."""

    model: str

    async def chat(self, messages: Sequence[Message], options: ChatOptions | None = None) -> ChatResult: ...

    async def chat_json(
        self, messages: Sequence[Message], schema: Mapping[str, Any], options: ChatOptions | None = None
    ) -> JsonResult: ...

    def stream(
        self, messages: Sequence[Message], options: ChatOptions | None = None, schema: Mapping[str, Any] | None = None
    ) -> ChatStream: ...


Send = Callable[[dict[str, Any], float, bool], Awaitable[httpx.Response]]


class ChatStream:
    """An answer as it is generated, one text delta at a time (server-sent events)::

        async with backend.stream(messages) as stream:
            async for delta in stream:
                ...
        stream.result  # the whole answer, with first_token_s

    Entering waits for a slot and retries like ``chat``; once text flows, a failure ends the stream with an error.
    """

    def __init__(self, send: Send, slots: asyncio.Semaphore, body: dict[str, Any], budget_s: float) -> None:
        self._send = send
        self._slots = slots
        self._body = body
        self._budget_s = budget_s
        self._exit = AsyncExitStack()
        self._events: AsyncIterator[ServerSentEvent] | None = None
        self._parts: list[str] = []
        self._model = ""
        self._finish_reason: str | None = None
        self._usage = Usage()
        self._started = 0.0
        self._deadline = 0.0
        self._first_token_s: float | None = None
        self._result: ChatResult | None = None

    @property
    def result(self) -> ChatResult:
        if self._result is None:
            raise RuntimeError("the stream has not finished")
        return self._result

    async def __aenter__(self) -> ChatStream:
        self._started = time.perf_counter()
        self._deadline = asyncio.get_running_loop().time() + self._budget_s
        try:
            async with asyncio.timeout_at(self._deadline):
                await self._exit.enter_async_context(self._slots)
                response = await self._send(self._body, self._deadline, True)
                self._exit.push_async_callback(response.aclose)
        except TimeoutError:
            await self._exit.aclose()
            raise _timed_out(self._budget_s) from None
        except BaseException:
            await self._exit.aclose()
            raise
        events = EventSource(response).aiter_sse()
        self._exit.push_async_callback(events.aclose)
        self._events = events
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self._exit.aclose()

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> str:
        if self._events is None:
            raise RuntimeError("use the stream inside `async with`")
        while self._result is None:
            event = await self._next_event(self._events)
            if event is None or event.data == "[DONE]":
                self._finish()
                break
            chunk = _parse(_Chunk, event.data)
            self._model = chunk.model or self._model
            self._usage = chunk.usage or self._usage
            for choice in chunk.choices[:1]:
                self._finish_reason = choice.finish_reason or self._finish_reason
                if choice.delta.content:
                    if self._first_token_s is None:
                        self._first_token_s = time.perf_counter() - self._started
                    self._parts.append(choice.delta.content)
                    return choice.delta.content
        raise StopAsyncIteration

    async def _next_event(self, events: AsyncIterator[ServerSentEvent]) -> ServerSentEvent | None:
        """The next event, or None when the server closed the stream."""
        try:
            async with asyncio.timeout_at(self._deadline):
                return await anext(events)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise _timed_out(self._budget_s) from None
        except SSEError as error:
            raise LLMBadOutput(f"not a server-sent event stream: {error}") from error
        except httpx.TransportError as error:
            raise _transport_failure(error) from error

    def _finish(self) -> None:
        if self._finish_reason is None:
            raise LLMUnavailable("the server ended the stream before the answer was finished")
        self._result = ChatResult(
            text="".join(self._parts),
            finish_reason=self._finish_reason,
            usage=self._usage,
            model=self._model,
            latency_s=time.perf_counter() - self._started,
            first_token_s=self._first_token_s,
        )


class OpenAIChat:
    """A ``ChatBackend`` on an OpenAI-compatible server's ``/chat/completions`` (``base_url`` ends before it, e.g.
    ``http://127.0.0.1:8080/v1``). Retries connect errors, 429 and 5xx with exponential backoff; a 4xx is the
    caller's mistake and raises at once. Pass ``http`` to share a connection pool (its timeouts are overridden).
    """

    def __init__(self, settings: LLMSettings, base_url: str, *, http: httpx.AsyncClient | None = None) -> None:
        self.model = settings.model
        self.settings = settings
        self._url = f"{base_url.rstrip('/')}/chat/completions"
        self._headers = {"Authorization": f"Bearer {settings.api_key.get_secret_value()}"} if settings.api_key else {}
        self._timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
        self._http = http or httpx.AsyncClient()
        self._owns_http = http is None
        self._slots = asyncio.Semaphore(settings.max_concurrency)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> OpenAIChat:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    async def chat(self, messages: Sequence[Message], options: ChatOptions | None = None) -> ChatResult:
        options = options or ChatOptions()
        return await self._complete(self._body(messages, options), options)

    async def chat_json(
        self, messages: Sequence[Message], schema: Mapping[str, Any], options: ChatOptions | None = None
    ) -> JsonResult:
        """An answer constrained to ``schema`` (``response_format``), parsed; LLMBadOutput when it does not parse
        (e.g. cut off by max_tokens).
        """
        options = options or ChatOptions()
        body = self._body(messages, options) | _response_format(schema)
        result = await self._complete(body, options)
        try:
            return JsonResult(json.loads(result.text), result)
        except json.JSONDecodeError as error:
            cut = " (cut off by max_tokens)" if result.finish_reason == "length" else ""
            raise LLMBadOutput(f"the model's answer is not JSON{cut}: {error}; answer: {result.text[:200]!r}") from None

    def stream(
        self, messages: Sequence[Message], options: ChatOptions | None = None, schema: Mapping[str, Any] | None = None
    ) -> ChatStream:
        """The answer as it is generated; with ``schema``, constrained to it as ``chat_json`` is (the deltas are
        JSON text: the caller parses the partial object as it grows)."""
        options = options or ChatOptions()
        if options.top_logprobs is not None:
            raise ValueError("logprobs come with chat(), not stream()")
        body = self._body(messages, options) | {"stream": True, "stream_options": {"include_usage": True}}
        if schema is not None:
            body |= _response_format(schema)
        return ChatStream(self._send, self._slots, body, self._budget(options))

    def _budget(self, options: ChatOptions) -> float:
        return options.time_budget_s or self.settings.time_budget_s

    def _body(self, messages: Sequence[Message], options: ChatOptions) -> dict[str, Any]:
        cap = self.settings.max_tokens
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(message) for message in messages],
            "max_tokens": min(options.max_tokens or cap, cap),
            "temperature": options.temperature,
        }
        if options.seed is not None:
            body["seed"] = options.seed
        if options.stop:
            body["stop"] = list(options.stop)
        if options.top_logprobs is not None:
            body |= {"logprobs": True, "top_logprobs": options.top_logprobs}
        return body

    async def _complete(self, body: dict[str, Any], options: ChatOptions) -> ChatResult:
        budget = self._budget(options)
        started = time.perf_counter()
        deadline = asyncio.get_running_loop().time() + budget
        try:
            async with asyncio.timeout_at(deadline), self._slots:
                response = await self._send(body, deadline, False)
        except TimeoutError:
            raise _timed_out(budget) from None
        completion = _parse(_Completion, response.content)
        choice = completion.choices[0]
        return ChatResult(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason or "unknown",
            usage=completion.usage,
            model=completion.model,
            latency_s=time.perf_counter() - started,
            logprobs=choice.logprobs.content if choice.logprobs else (),
        )

    async def _send(self, body: dict[str, Any], deadline: float, stream: bool) -> httpx.Response:
        """POST with retries; a response of status < 400 (for ``stream``, with its body still unread)."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            request = self._http.build_request(
                "POST", self._url, json=body, headers=self._headers, timeout=self._timeout
            )
            try:
                response = await self._http.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                failure = f"cannot reach {self._url}: {type(error).__name__} {error}"
            except httpx.TransportError as error:
                raise _transport_failure(error) from error
            else:
                if response.status_code < 400:
                    return response
                await response.aread()
                await response.aclose()
                message = _error_message(response)
                if response.status_code != 429 and response.status_code < 500:
                    raise LLMBadRequest(response.status_code, message)
                failure = f"{self._url} answered HTTP {response.status_code}: {message}"
            delay = self.settings.backoff_s * 2**attempt
            if attempt >= self.settings.retries or loop.time() + delay >= deadline:
                raise LLMUnavailable(f"{failure} (after {attempt + 1} attempt(s))")
            await asyncio.sleep(delay)
            attempt += 1


class UnavailableChat:
    """The ``none`` backend: every call raises LLMUnavailable, so a feature degrades exactly as when a server is
    down.
    """

    model = "none"

    def __init__(self, reason: str = "no LLM backend is configured (backend = 'none')") -> None:
        self.reason = reason

    async def chat(self, messages: Sequence[Message], options: ChatOptions | None = None) -> ChatResult:
        raise LLMUnavailable(self.reason)

    async def chat_json(
        self, messages: Sequence[Message], schema: Mapping[str, Any], options: ChatOptions | None = None
    ) -> JsonResult:
        raise LLMUnavailable(self.reason)

    def stream(
        self, messages: Sequence[Message], options: ChatOptions | None = None, schema: Mapping[str, Any] | None = None
    ) -> ChatStream:
        raise LLMUnavailable(self.reason)


@asynccontextmanager
async def open_backend(settings: LLMSettings) -> AsyncIterator[ChatBackend]:
    """The backend ``settings`` name, ready to use; a local server is started (model load off the event loop) and
    stopped on exit.
    """
    if settings.backend == "none":
        yield UnavailableChat()
    elif settings.backend == "openai":
        assert settings.base_url is not None  # LLMSettings validates it
        async with OpenAIChat(settings, settings.base_url) as chat:
            yield chat
    else:
        server = await asyncio.to_thread(LocalServer.from_settings, settings)
        await asyncio.to_thread(server.start)
        try:
            async with OpenAIChat(settings, server.base_url) as chat:
                yield chat
        finally:
            await asyncio.to_thread(server.stop)


def chat_once(settings: LLMSettings, messages: Sequence[Message], options: ChatOptions | None = None) -> ChatResult:
    """One chat from synchronous code (the CLI): opens the backend, asks, closes it."""

    async def ask() -> ChatResult:
        async with open_backend(settings) as backend:
            return await backend.chat(messages, options)

    return asyncio.run(ask())


_W = TypeVar("_W", bound=_Wire)


def _response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": dict(schema)}}}


def _parse(kind: type[_W], data: str | bytes) -> _W:
    try:
        return kind.model_validate_json(data)
    except ValidationError as error:
        raise LLMBadOutput(f"not an OpenAI {kind.__name__.strip('_').lower()}: {error}") from error


def _error_message(response: httpx.Response) -> str:
    try:
        return _ErrorBody.model_validate_json(response.content).error.message
    except ValidationError:
        return response.text[:300]


def _transport_failure(error: httpx.TransportError) -> Exception:
    if isinstance(error, httpx.TimeoutException):
        return LLMTimeout(f"no bytes from the server within the read timeout: {type(error).__name__}")
    return LLMUnavailable(f"the connection to the server failed: {type(error).__name__} {error}")


def _timed_out(budget_s: float) -> LLMTimeout:
    return LLMTimeout(f"no answer within the time budget of {budget_s:g} s")
