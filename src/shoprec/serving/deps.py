"""What routes depend on, as FastAPI dependencies: the runtime, the served pipeline, the caller's user (pseudonymised
here and nowhere else), the API key and the limits. Tests swap any of them with ``app.dependency_overrides``.

Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool, one hop per
dependency per request, and these are all a few microseconds of work (as plain ``def`` they halved the feed's
throughput on two cores: 731 -> about 400 requests/s with one worker busy). And each reads the runtime off the
request itself rather than through ``get_runtime``: FastAPI solves every nested dependency on every request, and
the feed's twelve solves cost more than the rest of its HTTP handling (four now, with ``routes/users.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request, Response, Security
from fastapi import Path as PathParam
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ValidationError

from shoprec.serving.errors import ApiError
from shoprec.serving.guard import API_KEY_HEADER, key_refusal
from shoprec.serving.pipeline import Pipeline
from shoprec.serving.runtime import Runtime
from shoprec.serving.schemas import EventError
from shoprec.serving.settings import ServingSettings

ID_LENGTH = 256
K_CEILING = 1_000  # documented bound of k; the server's own max_k (a setting, at most this) is checked below

M = TypeVar("M", bound=BaseModel)
_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="The server's API key.")


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


async def get_settings(request: Request) -> ServingSettings:
    return runtime_of(request).settings


async def get_pipeline(request: Request) -> Pipeline:
    """The pipeline serving now; a route keeps this object to its end, so a reload never swaps it mid-request."""
    return runtime_of(request).pipeline


@dataclass(frozen=True)
class User:
    """A caller's user: ``id`` is the pseudonym everything stores and ranks by, ``raw`` is echoed back."""

    id: str
    raw: str


def pseudonymous(runtime: Runtime, raw: str) -> User:
    return User(runtime.pseudonymize(raw), raw)


async def path_user(
    request: Request,
    user_id: Annotated[str, PathParam(min_length=1, max_length=ID_LENGTH, description="The caller's user id.")],
) -> User:
    return pseudonymous(runtime_of(request), user_id)


async def query_user(
    request: Request,
    user_id: Annotated[
        str | None, Query(min_length=1, max_length=ID_LENGTH, description="Personalise for this user (optional).")
    ] = None,
) -> User | None:
    return None if user_id is None else pseudonymous(runtime_of(request), user_id)


def check_key(settings: ServingSettings, given: str | None) -> None:
    """The guard's own key check (``serving.guard.key_refusal``), again per route: it documents the key in the
    OpenAPI page and covers the routes that read no body, which the guard leaves to this."""
    if (refusal := key_refusal(given, settings.api_key)) is not None:
        raise ApiError(401, refusal, API_KEY_HEADER)


async def writer(request: Request, key: Annotated[str | None, Security(_key_header)]) -> None:
    check_key(runtime_of(request).settings, key)


async def reader(request: Request, key: Annotated[str | None, Security(_key_header)]) -> None:
    """Reads reveal a user's history (feed, explain): ``--require-key-for-reads`` guards them too."""
    settings = runtime_of(request).settings
    if settings.read_key_required:
        check_key(settings, key)


def bounded_k(settings: ServingSettings, k: int) -> int:
    if k > settings.max_k:
        raise ApiError(422, f"k: at most {settings.max_k} items per request on this server", "k")
    return k


ListLength = Annotated[int, Query(ge=1, le=K_CEILING, description="How many items (at most the server's max_k).")]


async def feed_k(request: Request, k: ListLength = 10) -> int:
    return bounded_k(runtime_of(request).settings, k)


async def similar_k(request: Request, k: ListLength = 5) -> int:
    return bounded_k(runtime_of(request).settings, k)


Reads = [Depends(reader)]
Writes = [Depends(writer)]


async def get_pseudonymize(request: Request) -> Callable[[str], str]:
    """The one keyed pseudonym function: path users above and posted events' users both go through it."""
    return runtime_of(request).pseudonymize


def as_json(result: BaseModel) -> Response:
    """The pipeline already built a validated response model: serialise it once, here. Returning the model would
    make FastAPI validate it again on a second thread-pool hop (about half a millisecond per request)."""
    return Response(result.model_dump_json(), media_type="application/json")


def check_batch(size: int, limit: int, field: str) -> None:
    if size > limit:
        raise ApiError(413, f"{size:,} {field} in one request; at most {limit:,}: split the batch", field)


def validate_each(model: type[M], raw: Sequence[Any]) -> tuple[list[tuple[int, M]], list[EventError]]:
    """Each element validated on its own: the valid ones with their batch index, and the first error of the others."""
    valid: list[tuple[int, M]] = []
    rejected: list[EventError] = []
    for index, element in enumerate(raw):
        try:
            valid.append((index, model.model_validate(element)))
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(map(str, first["loc"])) or "event"
            rejected.append(EventError(index=index, field=field, message=first["msg"]))
    return valid, rejected
