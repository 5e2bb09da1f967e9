"""The HTTP API: thin routes over one shared pipeline, JSON errors everywhere, metrics on every request.

The home feed route is ``async def`` and micro-batched (``shoprec.serving.batching``): feeds that the event loop
received together run through one model forward, since for a short history the forward costs about the same for
one user as for several (measured with 2 workers: 614 -> 768 requests/s at most, p50 at 500 requests/s 24.5 ->
7.4 ms). On the loop there is also no hop to a worker thread and no convoy of threads fighting over the GIL for
the model (a py-spy profile of the threaded route showed the model at half the samples and eight threads queueing
for the GIL). One process keeps one core busy, so ``shoprec serve --workers 2`` uses the second. Every other route
is a plain ``def`` on FastAPI's threads: search encodes a query (~20 ms) and ingest waits on an fsync (SQLite
``synchronous=FULL``), neither of which may block the event loop.

Ingest answers 200 whenever it ran: ``stored`` counts the events written (durably, before the response) and
``rejected`` names the others by batch index. 207 Multi-Status is WebDAV's, with its own body format, so a plain 200
with the rejected list is the contract.
"""

import gc
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Body, Depends, FastAPI, Query, Request, Response, Security
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, SkipValidation, ValidationError
from starlette.exceptions import HTTPException

from shoprec import __version__
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.serving.batching import MicroBatcher
from shoprec.serving.guard import API_KEY_HEADER, RequestGuard, error_response, key_refusal
from shoprec.serving.metrics import Metrics, MetricsMiddleware
from shoprec.serving.pipeline import FeedRequest, Pipeline
from shoprec.serving.schemas import (
    EventError,
    EventIn,
    EventsAccepted,
    Explanation,
    Health,
    ItemIn,
    ItemsAccepted,
    RecommendationList,
    SearchResults,
    SimilarList,
)
from shoprec.serving.settings import SETTINGS_ENV, ServingSettings
from shoprec.storage.store import Store

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


UserId = Annotated[str, PathParam(min_length=1, max_length=256, description="The caller's user id.")]
ItemId = Annotated[str, PathParam(min_length=1, max_length=256)]
OptionalUser = Annotated[
    str | None, Query(min_length=1, max_length=256, description="Personalise for this user (optional).")
]


class ApiError(Exception):
    """An error answered as the JSON error envelope with its status: the caller's (4xx), or a passing one of the
    server's such as store contention (503 with ``headers={"Retry-After": "1"}``), logged in one line."""

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
        self.headers = headers


class EventBatch(BaseModel):
    """``POST /v1/events``. Events are documented as ``EventIn`` but validated one by one in the route, so that one
    bad event is reported by its index instead of sinking the whole batch."""

    model_config = ConfigDict(extra="forbid")
    events: list[SkipValidation[EventIn]]


class ItemBatch(BaseModel):
    """``POST /v1/items``; items are validated one by one in the route, like events."""

    model_config = ConfigDict(extra="forbid")
    items: list[SkipValidation[ItemIn]]


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model_dir: Path | None = None  # default: the directory being served now


class ReloadScheduled(BaseModel):
    """The 202 answer of a reload with several workers: they restart one by one onto ``model_dir``."""

    status: Literal["restarting"] = "restarting"
    workers: int
    model_dir: Path


class Runtime:
    """What the routes share: the store, the pipeline being served (swapped whole on reload) and the event count.

    ``store``/``pipeline`` are set by ``start`` in the lifespan. A route reads ``self.pipeline`` once and uses that
    object to the end, so a reload never changes the model under a request in flight.
    """

    store: Store
    pipeline: Pipeline
    pseudonymize: Callable[[str], str]

    def __init__(self, settings: ServingSettings) -> None:
        self.settings = settings
        self.metrics = Metrics(count_events=lambda: self.store.count_events())
        self.model_dir = settings.model_dir
        self._catalog_lock = threading.Lock()

    def start(self) -> None:
        self.store = Store(self.settings.database_url)
        try:
            self.pseudonymize = Pseudonymizer.from_environment()
            self.reload()
        except BaseException:
            self.store.close()
            raise

    def stop(self) -> None:
        self.metrics.close()
        self.store.close()

    def reload(self, model_dir: Path | None = None) -> Health:
        """Load ``model_dir`` (default: the current one) beside the serving pipeline, then swap the reference.

        Blocking (seconds): call it off the event loop. A bad directory raises and leaves the old model serving.
        """
        # Item upserts wait for the swap: one that reached the old pipeline after the new one had read the catalog
        # would be missing from the new one. Two reloads at once would race on which one ends up serving.
        with self._catalog_lock:
            directory = model_dir or self.model_dir
            pipeline = Pipeline.load(
                directory,
                self.store,
                search_encoder=self.settings.search_encoder,
                cache_dir=self.settings.cache_dir,
                history_limit=self.settings.history_limit,
            )
            self.pipeline, self.model_dir = pipeline, directory
            self.metrics.serve_model(pipeline.model_version, pipeline.model_name)
            _freeze_long_lived_objects()
        logger.info("serving %s %s from %s", pipeline.model_name, pipeline.model_version, directory)
        return self.health()

    def upsert_items(self, items: Sequence[ItemIn]) -> ItemsAccepted:
        with self._catalog_lock:
            return self.pipeline.upsert_items(items)

    def health(self) -> Health:
        pipeline = self.pipeline
        return Health(
            status="ok",
            model_version=pipeline.model_version,
            model=pipeline.model_name,
            items=pipeline.n_items(),
            events=self.store.count_events(),
            store=self.store.describe(),
        )


def _freeze_long_lived_objects() -> None:
    """Exempt what the load created (model, catalog index, encoders) from the cyclic garbage collector, so that a
    full collection does not walk all of it while requests wait (the slowest feed under load: 205-257 ms before,
    115-119 ms after). Unfreezing first lets the previous model's objects be collected after a reload.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def app_from_environment() -> FastAPI:
    """The app of one worker process of ``shoprec serve --workers N``: its settings come from $SHOPREC_SERVING_SETTINGS
    (uvicorn starts workers from an import string, so they cannot be handed an object)."""
    return create_app(ServingSettings.model_validate_json(os.environ[SETTINGS_ENV]))


def reload_model(app: FastAPI, model_dir: Path | None = None) -> Health:
    """Reload the served model of an app made by ``create_app`` (the CLI calls it on SIGHUP, off the event loop)."""
    runtime: Runtime = app.state.runtime
    return runtime.reload(model_dir)


def create_app(settings: ServingSettings) -> FastAPI:
    """The API over the model in ``settings.model_dir`` and the store at ``settings.database_url``.

    Nothing is loaded here: the store and the model open in the lifespan, so building an app is cheap.
    """
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(
        title="shoprec",
        version=__version__,
        summary="Product recommendations, similar items, search and explanations over a trained shoprec model.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.add_middleware(
        RequestGuard,
        api_key=settings.api_key,
        read_key_required=settings.read_key_required,
        max_body_bytes=settings.max_body_bytes,
    )
    app.add_middleware(MetricsMiddleware, metrics=runtime.metrics)  # added last, so outermost: it times the guard too
    _install_error_handlers(app)

    key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="The server's API key.")

    def check_key(given: str | None) -> None:
        if refusal := key_refusal(given, settings.api_key):
            raise ApiError(401, refusal, API_KEY_HEADER)

    async def writer(key: Annotated[str | None, Security(key_header)]) -> None:
        check_key(key)

    async def reader(key: Annotated[str | None, Security(key_header)]) -> None:
        if settings.read_key_required:
            check_key(key)

    reads = [Depends(reader)]
    writes = [Depends(writer)]
    # A local alias puts this app's max_k into validation and the docs. It works because this module does not
    # postpone annotations (no `from __future__ import annotations`): FastAPI gets the objects, not names to look up.
    K = Annotated[int, Query(ge=1, le=settings.max_k, description=f"How many items, 1 to {settings.max_k}.")]  # noqa: N806

    feeds = MicroBatcher[FeedRequest, RecommendationList](lambda batch: runtime.pipeline.recommend_many(batch))
    app.state.feeds = feeds

    def served(route: str, count: int) -> None:
        runtime.metrics.items_served.labels(route=route).inc(count)

    @app.get(
        "/v1/users/{user_id}/recommendations",
        dependencies=reads,
        summary="Recommendations for a user",
        response_model=RecommendationList,
    )
    async def recommendations(
        user_id: UserId,
        k: K = 10,
        category: Annotated[
            str | None, Query(max_length=1_000, description='Only items with this category level, e.g. "Nails".')
        ] = None,
        exclude_seen: Annotated[bool, Query(description="Leave out items the user already interacted with.")] = True,
    ) -> Response:
        """The user's next items from their stored history; an unknown user gets a popular cold-start list."""
        result = await feeds.submit(
            FeedRequest(runtime.pseudonymize(user_id), user_id, k, category or None, exclude_seen)
        )
        served("recommendations", len(result.items))
        return _json(result)

    @app.get(
        "/v1/items/{item_id}/similar",
        dependencies=reads,
        summary="Items similar to an item",
        response_model=SimilarList,
    )
    def similar(item_id: ItemId, k: K = 5, user_id: OptionalUser = None) -> Response:
        """Items like ``item_id`` in the model's space and by text; with ``user_id``, blended with the user's taste."""
        user = None if user_id is None else runtime.pseudonymize(user_id)
        try:
            result = runtime.pipeline.similar(item_id, k, user_id=user, raw_user_id=user_id)
        except KeyError:
            raise ApiError(404, f"unknown item {item_id!r}", "item_id") from None
        served("similar", len(result.items))
        return _json(result)

    @app.get(
        "/v1/search", dependencies=reads, summary="Search the catalog in plain language", response_model=SearchResults
    )
    def search(
        q: Annotated[str, Query(min_length=1, max_length=500, description='e.g. "red nail polish under $10"')],
        k: K = 10,
        user_id: OptionalUser = None,
    ) -> Response:
        """Items matching the query's text and its price and category constraints, personalised with ``user_id``."""
        user = None if user_id is None else runtime.pseudonymize(user_id)
        result = runtime.pipeline.search(q, k, user_id=user)
        served("search", len(result.items))
        return _json(result)

    @app.get(
        "/v1/users/{user_id}/recommendations/{item_id}/explain",
        dependencies=reads,
        summary="Why an item for a user",
        response_model=Explanation,
    )
    def explain(user_id: UserId, item_id: ItemId) -> Response:
        """The item's score and rank for the user, and how much each recent history item added to it."""
        try:
            return _json(runtime.pipeline.explain(runtime.pseudonymize(user_id), user_id, item_id))
        except KeyError:
            raise ApiError(404, f"unknown item {item_id!r}", "item_id") from None

    @app.post("/v1/events", dependencies=writes, summary="Record behaviour events")
    def post_events(batch: EventBatch) -> EventsAccepted:
        """Validate each event on its own, store the valid ones in one transaction, and answer after the commit.

        Always 200 once the batch is read: ``stored`` counts the events written, ``rejected`` gives the index, field
        and reason of each event that was not (invalid, or an item not in the catalog).
        """
        _check_batch_size(len(batch.events), settings.max_batch, "events")
        valid, rejected = _validate_each(EventIn, batch.events)
        accepted = runtime.pipeline.ingest(valid, runtime.pseudonymize)
        return EventsAccepted(
            stored=accepted.stored, rejected=sorted([*rejected, *accepted.rejected], key=lambda e: e.index)
        )

    @app.post("/v1/items", dependencies=writes, summary="Add or update catalog items")
    def post_items(batch: ItemBatch) -> ItemsAccepted:
        """Insert or update items in one transaction; new items are placed by their text and served at once.

        All or nothing: a catalog batch is one change, so any invalid item is a 422 listing every bad index.
        """
        _check_batch_size(len(batch.items), settings.max_batch, "items")
        valid, rejected = _validate_each(ItemIn, batch.items)
        if rejected:
            first = rejected[0]
            raise ApiError(
                422,
                f"{len(rejected)} invalid item(s), none stored; first: items.{first.index}.{first.field}: "
                f"{first.message}",
                f"items.{first.index}.{first.field}",
                [error.model_dump() for error in rejected],
            )
        return runtime.upsert_items([item for _, item in valid])

    @app.post(
        "/v1/admin/reload",
        dependencies=writes,
        summary="Reload the model",
        response_model=Health,
        responses={202: {"model": ReloadScheduled, "description": "Several workers: a rolling restart began."}},
    )
    def reload(request: Annotated[ReloadRequest | None, Body()] = None) -> Any:
        """Load the model directory again, or ``model_dir``, then swap it in; requests in flight finish on the old
        model, and a directory that fails to load is a 400 while the old model keeps serving.

        With several worker processes, each must load it: the supervisor restarts them one at a time (each new one
        serves before its old one stops) and this answers 202 at once. They reload the directory they serve, so a
        new ``model_dir`` is a 409 there: point that directory (a symlink) at the new model instead.
        """
        directory = None if request is None else request.model_dir
        if settings.workers > 1:
            if directory is not None and directory != runtime.model_dir:
                message = f"{settings.workers} workers serve {runtime.model_dir}: they can only reload that directory"
                raise ApiError(409, message, "model_dir")
            os.kill(os.getppid(), signal.SIGHUP)  # uvicorn's supervisor: a rolling restart of every worker
            scheduled = ReloadScheduled(workers=settings.workers, model_dir=runtime.model_dir)
            return JSONResponse(scheduled.model_dump(mode="json"), status_code=202)
        try:
            return runtime.reload(directory)
        except (ValueError, FileNotFoundError) as error:
            raise ApiError(400, f"model not reloaded: {error}", "model_dir") from None

    # Plain def: both count the stored events (one query), so they run on the worker threads.
    @app.get("/health", summary="Liveness, model version and counts")
    def health() -> Health:
        return runtime.health()

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def metrics() -> Response:
        return Response(runtime.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


def _json(result: BaseModel) -> Response:
    """The pipeline already built a validated response model: serialise it once, here. Returning the model would
    make FastAPI validate it again on a second thread-pool hop (about half a millisecond per request)."""
    return Response(result.model_dump_json(), media_type="application/json")


def _check_batch_size(size: int, limit: int, field: str) -> None:
    if size > limit:
        raise ApiError(413, f"{size:,} {field} in one request; at most {limit:,}: split the batch", field)


def _validate_each(model: type[M], raw: Sequence[Any]) -> tuple[list[tuple[int, M]], list[EventError]]:
    """Each element validated on its own: the valid ones with their batch index, and the first error of the others."""
    valid: list[tuple[int, M]] = []
    rejected: list[EventError] = []
    for index, element in enumerate(raw):
        try:
            valid.append((index, model.model_validate(element)))
        except ValidationError as error:
            first = error.errors()[0]
            rejected.append(EventError(index=index, field=_field(first["loc"]) or "event", message=first["msg"]))
    return valid, rejected


def _field(loc: Sequence[int | str]) -> str:
    return ".".join(map(str, loc))


def _install_error_handlers(app: FastAPI) -> None:
    """Every error the API can answer is the same JSON envelope, never HTML and never a traceback (an unexpected
    error is answered by the ``RequestGuard``)."""

    async def on_api_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        if error.status >= 500:
            logger.warning("%s %s answered %d: %s", request.method, request.url.path, error.status, error.message)
        return error_response(error.status, error.message, error.field, error.details, error.headers)

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

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
