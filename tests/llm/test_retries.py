"""Retry rules on statuses llama.cpp never sends on purpose (429, 5xx): a real HTTP server on loopback answers a
scripted sequence of statuses, the last one a minimal OpenAI chat completion.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from shoprec.llm.backends import Message
from shoprec.llm.errors import LLMBadRequest, LLMUnavailable
from shoprec.llm.settings import LLMSettings

from .conftest import with_chat

HELLO: list[Message] = [{"role": "user", "content": "hi"}]
COMPLETION = {
    "model": "scripted",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}


class Scripted(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.statuses: list[int] = []
        self.seen: list[float] = []  # arrival times

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: Scripted

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append(time.perf_counter())
        status = self.server.statuses.pop(0)
        body = COMPLETION if status == 200 else {"error": {"message": f"scripted {status}"}}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    server = Scripted()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


SETTINGS = LLMSettings(backend="openai", base_url="http://unused", model="scripted", retries=3, backoff_s=0.05)


def test_429_and_5xx_are_retried_with_growing_waits(scripted: Scripted) -> None:
    scripted.statuses = [429, 503, 500, 200]
    result = with_chat(SETTINGS, scripted.base_url, lambda chat: chat.chat(HELLO))
    assert result.text == "hello"
    waits = [later - earlier for earlier, later in zip(scripted.seen, scripted.seen[1:], strict=False)]
    assert len(waits) == 3
    for wait, backoff in zip(waits, (0.05, 0.1, 0.2), strict=True):
        assert backoff <= wait < backoff + 0.5


def test_retries_end_in_unavailable_with_the_last_status(scripted: Scripted) -> None:
    scripted.statuses = [503] * 4
    with pytest.raises(LLMUnavailable, match=r"HTTP 503: scripted 503 \(after 4 attempt\(s\)\)"):
        with_chat(SETTINGS, scripted.base_url, lambda chat: chat.chat(HELLO))


def test_no_retry_that_would_overrun_the_time_budget(scripted: Scripted) -> None:
    scripted.statuses = [503, 200]
    slow_backoff = SETTINGS.model_copy(update={"backoff_s": 5.0, "time_budget_s": 1.0})
    started = time.perf_counter()
    with pytest.raises(LLMUnavailable, match=r"after 1 attempt"):
        with_chat(slow_backoff, scripted.base_url, lambda chat: chat.chat(HELLO))
    assert time.perf_counter() - started < 0.5


def test_other_4xx_is_not_retried(scripted: Scripted) -> None:
    scripted.statuses = [404, 200]
    with pytest.raises(LLMBadRequest, match="HTTP 404: scripted 404"):
        with_chat(SETTINGS, scripted.base_url, lambda chat: chat.chat(HELLO))
    assert len(scripted.seen) == 1
