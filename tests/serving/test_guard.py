"""The front door on a tiny app (no model): the key before the body, the body limit, one log line per failure, and
request timing that covers the wait of a request queued behind another.

Each test app sits inside ``Wire``, which counts the body bytes the app took from the server, so a test can say
that a refused body was never read.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from shoprec.serving.errors import ApiError, install_error_handlers
from shoprec.serving.guard import RequestGuard
from shoprec.serving.metrics import Metrics, MetricsMiddleware

KEY = "right-key"
WITH_KEY = {"X-API-Key": KEY}
LIMIT = 16 * 1024 * 1024


class Wire:
    """The server side of the app: counts the body bytes the app received."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.bytes_read = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            self.bytes_read += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)


def tiny_app(api_key: str | None = KEY, read_key_required: bool = False, limit: int = LIMIT) -> FastAPI:
    """A write that reads its body, a read, and a route that fails; behind the guard and the error handlers."""
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestGuard, api_key=api_key, read_key_required=read_key_required, max_body_bytes=limit)
    app.state.bodies = []

    @app.post("/write")
    async def write(request: Request) -> dict[str, int]:
        body = await request.body()
        app.state.bodies.append(len(body))
        return {"read": len(body)}

    @app.get("/read")
    async def read(request: Request) -> dict[str, int]:
        return {"read": len(await request.body())}

    @app.get("/broken")
    def broken() -> None:
        raise RuntimeError("secret internals")

    @app.get("/busy")
    def busy() -> None:
        raise ApiError(503, "the store is busy; retry", headers={"Retry-After": "1"})

    return app


def send(app: FastAPI, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, int]:
    """One request through ``Wire``: the response and the body bytes the app read."""
    wire = Wire(app)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=wire), base_url="http://t") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go()), wire.bytes_read


def envelope(response: Any, status: int) -> dict[str, Any]:
    """The error envelope of ``response`` (httpx's, or the one TestClient uses), after checking status and shape."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["message"] and error["details"] == []
    return dict(error)


def test_a_60_mb_body_without_the_key_is_refused_at_once_unread() -> None:
    app = tiny_app()
    body = b"[" + b"{}," * 20_000_000 + b"{}]"
    start = time.perf_counter()
    response, read = send(app, "POST", "/write", content=body, headers={"Content-Type": "application/json"})
    assert time.perf_counter() - start < 2
    assert envelope(response, 401)["field"] == "X-API-Key"
    assert read == 0 and app.state.bodies == []
    wrong, read = send(app, "POST", "/write", content=body, headers={"X-API-Key": "wrong-key"})
    assert envelope(wrong, 401)["field"] == "X-API-Key" and read == 0


def test_with_the_key_a_body_is_read() -> None:
    app = tiny_app()
    response, read = send(app, "POST", "/write", content=b"[1, 2]", headers=WITH_KEY)
    assert response.json() == {"read": 6} and read == 6


def test_a_server_without_a_key_refuses_writes_naming_the_variable() -> None:
    response, read = send(tiny_app(api_key=None), "POST", "/write", content=b"[]", headers=WITH_KEY)
    assert "SHOPREC_API_KEY" in envelope(response, 401)["message"] and read == 0


def test_the_router_still_answers_unknown_paths_and_methods_before_the_key() -> None:
    assert send(tiny_app(), "POST", "/nowhere", content=b"x" * 1000)[0].status_code == 404
    assert send(tiny_app(), "DELETE", "/write")[0].status_code == 405


def test_reads_need_the_key_only_when_the_server_says_so() -> None:
    assert send(tiny_app(), "GET", "/read", content=b"abc")[0].json() == {"read": 3}
    guarded = tiny_app(read_key_required=True)
    assert envelope(send(guarded, "GET", "/read", content=b"abc")[0], 401)["field"] == "X-API-Key"
    assert send(guarded, "GET", "/read", content=b"abc", headers=WITH_KEY)[0].json() == {"read": 3}


def test_a_declared_length_over_the_limit_is_413_before_reading() -> None:
    app = tiny_app(limit=1000)
    response, read = send(app, "POST", "/write", content=b"x" * 1001, headers=WITH_KEY)
    error = envelope(response, 413)
    assert error["field"] == "body" and "1,001" in error["message"] and "1,000" in error["message"]
    assert read == 0 and app.state.bodies == []
    assert send(app, "POST", "/write", content=b"x" * 1000, headers=WITH_KEY)[0].json() == {"read": 1000}


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit() -> None:
    app = tiny_app(limit=1000)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):  # 10,000 bytes in all, with no Content-Length
            yield b"x" * 100

    response, read = send(app, "POST", "/write", content=chunks(), headers=WITH_KEY)
    assert envelope(response, 413)["field"] == "body"
    assert 1000 < read <= 1100 and app.state.bodies == []


def test_an_unexpected_error_is_a_500_envelope_logged_once_and_kept_from_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing escapes the app (TestClient re-raises whatever does, as uvicorn would log it a second time)."""
    with caplog.at_level(logging.INFO), TestClient(tiny_app()) as client:
        response = client.get("/broken")
    envelope(response, 500)
    assert "secret" not in response.text
    [record] = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert record.exc_info is not None and "GET /broken" in record.getMessage()


def test_a_503_carries_retry_after_and_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO), TestClient(tiny_app()) as client:
        response = client.get("/busy")
    assert envelope(response, 503)["message"] == "the store is busy; retry"
    assert response.headers["Retry-After"] == "1"
    [record] = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert record.exc_info is None and "GET /busy answered 503" in record.getMessage()


# ---- request timing ---------------------------------------------------------------------------------------------

HELD = 0.3  # seconds the first request holds the lock


def timed_app() -> tuple[FastAPI, Metrics]:
    """Routes that wait on a lock the first request holds: on the event loop and on the thread pool."""
    app = tiny_app()
    metrics = Metrics(count_events=lambda: 0)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # last, so outermost, as in create_app
    loop_lock = asyncio.Lock()
    thread_lock = threading.Lock()

    @app.get("/hold")
    async def hold() -> None:
        async with loop_lock:
            await asyncio.to_thread(_hold_thread_lock, thread_lock)

    @app.get("/loop")
    async def loop_wait() -> None:
        async with loop_lock:
            pass

    @app.get("/thread")
    def thread_wait() -> None:
        with thread_lock:
            pass

    return app, metrics


def _hold_thread_lock(lock: threading.Lock) -> None:
    with lock:
        time.sleep(HELD)


def seconds(metrics: Metrics, route: str) -> float:
    value = metrics.registry.get_sample_value("shoprec_request_duration_seconds_sum", {"route": route})
    return float(value or 0.0)


def counted(metrics: Metrics, method: str, route: str, status: int) -> float:
    labels = {"route": route, "method": method, "status": str(status)}
    return float(metrics.registry.get_sample_value("shoprec_requests_total", labels) or 0.0)


def test_latency_covers_the_wait_behind_another_request_and_guard_answers() -> None:
    app, metrics = timed_app()

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            first = asyncio.create_task(client.get("/hold"))
            await asyncio.sleep(0.05)  # /hold now holds both locks
            return await asyncio.gather(first, client.get("/loop"), client.get("/thread"))

    assert [response.status_code for response in asyncio.run(together())] == [200, 200, 200]
    assert seconds(metrics, "/loop") > HELD - 0.1 and seconds(metrics, "/thread") > HELD - 0.1
    assert send(app, "POST", "/write", content=b"[]")[0].status_code == 401
    assert counted(metrics, "POST", "/write", 401) == 1
    assert TestClient(app).get("/broken").status_code == 500
    assert counted(metrics, "GET", "/broken", 500) == 1 and seconds(metrics, "/broken") > 0
