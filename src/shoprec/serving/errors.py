"""The one JSON error envelope every failure is answered with, and the handlers that produce it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from shoprec.serving.guard import error_response
from shoprec.serving.logs import redacted
from shoprec.storage.store import StoreBusy

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 1  # a busy store clears in well under a second once the writer ahead of it commits


class ApiError(Exception):
    """An error the caller caused (or may retry), answered as the JSON error envelope with its status."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        details: Sequence[Any] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.field, self.details = status, message, field, list(details)
        self.headers = dict(headers or {})


class ErrorDetail(BaseModel):
    status: int
    message: str
    field: str | None = None  # the request field at fault, e.g. "k", "events.3.timestamp", "X-API-Key"
    details: list[Any] = []


class ErrorBody(BaseModel):
    error: ErrorDetail


_MEANINGS = {
    400: "Malformed request (bad JSON, or a model directory that does not load)",
    401: "Missing or wrong X-API-Key",
    404: "Unknown item",
    409: "Conflicting request",
    413: "Body or batch too large",
    422: "Invalid field",
    502: "The assistant's model failed (an answer that is not what was asked for)",
    503: "Store busy, no model, or no LLM for the assistant (retry after Retry-After seconds when given)",
    504: "The assistant's model did not answer within its time budget",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route: each error status it can answer, all in the envelope."""
    return {status: {"model": ErrorBody, "description": _MEANINGS[status]} for status in statuses}


def _field(loc: Sequence[int | str]) -> str:
    return ".".join(map(str, loc))


def install_error_handlers(app: FastAPI) -> None:
    """Every error the API can answer is the same JSON envelope, never HTML and never a traceback. An unexpected
    error is answered (and logged once) by ``serving.guard.RequestGuard``, outside these handlers."""

    async def on_api_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        if error.status >= 500:
            path = redacted(request.url.path)
            logger.warning("%s %s answered %d: %s", request.method, path, error.status, error.message)
        return error_response(error.status, error.message, error.field, error.details, headers=error.headers or None)

    async def on_http_error(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        return error_response(error.status_code, str(error.detail), headers=error.headers)

    async def on_invalid_request(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        errors = list(error.errors())
        if errors[0]["type"] == "json_invalid":
            message = f"malformed JSON at character {errors[0]['loc'][-1]}: {errors[0]['ctx']['error']}"
            return error_response(400, message, "body")
        details = [{"field": _field(e["loc"]), "message": e["msg"], "type": e["type"]} for e in errors]
        first = details[0]
        return error_response(422, f"{first['field']}: {first['message']}", first["field"], details)

    async def on_busy(request: Request, error: Exception) -> JSONResponse:
        logger.warning("store busy in %s %s: %s", request.method, redacted(request.url.path), error)
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return error_response(503, "the store is busy; retry shortly", headers=headers)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(StoreBusy, on_busy)
