"""The app's front door: no body byte is read without the API key, bodies have a size limit, and an unexpected
error is answered and logged here, once.

Why a middleware: FastAPI reads and parses a JSON body before it runs any dependency, so the key check of a route
dependency came after the body (a 60 MB body of ``{},`` posted without a key raised the server's memory by 1.2 GB:
parsed JSON holds up to 25 times its bytes). The guard hands the app a ``receive`` that refuses, at the body's first
read, a request that lacks the key or declares too large a body, and counts the bytes of a chunked one. Checking at
the first read rather than on arrival lets the router answer first: an unknown path is still a 404 and a wrong
method a 405, and a route that reads no body is left to its key dependency, which shares ``key_refusal`` with this.

Why the last-resort handler is here: Starlette's outermost middleware answers an unexpected error with the app's
500 handler and then re-raises it so that the server logs it, so the traceback was logged twice (once by our
handler, once by uvicorn). Caught here, it is logged once with its traceback, answered as the JSON envelope, and
timed and counted by the metrics middleware outside this one.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shoprec.serving.logs import redacted
from shoprec.serving.settings import API_KEY_ENV

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # reads: the key is needed only when reads require it
INTERNAL_ERROR = "internal error; it has been logged"


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    details: Sequence[Any] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The API's one error format: ``{"error": {"status", "message", "field", "details"}}``."""
    body = {"error": {"status": status, "message": message, "field": field, "details": list(details)}}
    return JSONResponse(body, status_code=status, headers=headers)


def key_refusal(given: str | None, expected: str | None) -> str | None:
    """Why ``given`` does not open a guarded request, or None when it does. No key configured refuses every one,
    so a forgotten key never opens writes; the comparison takes the same time wherever the keys differ."""
    if expected is None:
        return f"this server has no API key: set {API_KEY_ENV} to enable it"
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        return f"missing or wrong {API_KEY_HEADER} header"
    return None


class _Refused(BaseException):
    """Raised by the guarded ``receive`` and caught by the guard. A BaseException, because FastAPI turns any
    Exception raised while it reads a body into a 400, and the refusal must reach the guard as it is."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


class _Body:
    """The ``receive`` the app gets: refuses at the first read when the key is missing or the declared length is
    over the limit, and refuses once the bytes received pass the limit (a chunked body declares no length)."""

    def __init__(self, receive: Receive, refusal: str | None, declared: int | None, limit: int) -> None:
        self._receive, self._refusal, self._declared, self._limit = receive, refusal, declared, limit
        self._received = 0

    async def receive(self) -> Message:
        if self._refusal is not None:
            raise _Refused(error_response(401, self._refusal, API_KEY_HEADER))
        if self._declared is not None and self._declared > self._limit:
            raise _Refused(self._too_large(f"a body of {self._declared:,} bytes"))
        message = await self._receive()
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._limit:
                raise _Refused(self._too_large("a body"))
        return message

    def _too_large(self, what: str) -> JSONResponse:
        return error_response(413, f"{what} is over the limit of {self._limit:,} bytes: split it", "body")


class RequestGuard:
    """Pure ASGI (a BaseHTTPMiddleware would add about a millisecond a request and buffer streamed bodies).

    A request needs ``api_key`` when it writes (any method but GET, HEAD, OPTIONS), and every request does when
    ``read_key_required``; its body may hold at most ``max_body_bytes``.
    """

    def __init__(self, app: ASGIApp, *, api_key: str | None, read_key_required: bool, max_body_bytes: int) -> None:
        self.app = app
        self.api_key = api_key
        self.read_key_required = read_key_required
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        needs_key = self.read_key_required or scope["method"] not in SAFE_METHODS
        refusal = key_refusal(headers.get(API_KEY_HEADER), self.api_key) if needs_key else None
        body = _Body(receive, refusal, _declared_length(headers), self.max_body_bytes)
        started = False

        async def send_and_note_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, body.receive, send_and_note_start)
        except _Refused as refused:
            if not started:  # an app that answers before it reads its body is cut short: nothing else to say
                await refused.response(scope, receive, send)
        except Exception as error:
            logger.error("unexpected error in %s %s", scope["method"], redacted(scope["path"]), exc_info=error)
            if not started:
                await error_response(500, INTERNAL_ERROR)(scope, receive, send)


def _declared_length(headers: Headers) -> int | None:
    """The Content-Length header, or None when there is none (chunked) or it is not a number (the server refuses
    those before the app sees them)."""
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None
