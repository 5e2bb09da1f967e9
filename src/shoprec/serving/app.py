"""The HTTP API: ``create_app(settings)`` builds the app; the routes live in ``serving.routes``, one module per
resource, over the shared ``Runtime`` (``serving.deps`` hands it out).

The home feed is micro-batched (``shoprec.serving.batching``): feeds that arrive together run through one model
forward in a worker thread, so the event loop keeps accepting requests while a batch runs. One process keeps one
core busy, so ``shoprec serve --workers 2`` uses the second.
"""

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from shoprec import __version__
from shoprec.llm.backends import ChatBackend, UnavailableChat, open_backend
from shoprec.llm.settings import LLMSettings
from shoprec.serving.batching import MicroBatcher
from shoprec.serving.errors import install_error_handlers
from shoprec.serving.guard import RequestGuard
from shoprec.serving.metrics import MetricsMiddleware
from shoprec.serving.pipeline import FeedRequest
from shoprec.serving.routes import admin, assistant, events, items, privacy, search, users
from shoprec.serving.runtime import Runtime
from shoprec.serving.schemas import Health, RecommendationList
from shoprec.serving.settings import SETTINGS_ENV, ServingSettings
from shoprec.storage.store import StoreBusy

logger = logging.getLogger(__name__)


@asynccontextmanager
async def llm_backend(settings: ServingSettings) -> AsyncIterator[ChatBackend]:
    """The assistant's backend; "unavailable" (each LLM route then answers 503 saying why) when none is set."""
    if settings.llm_unavailable is not None:
        yield UnavailableChat(settings.llm_unavailable)
        return
    async with open_backend(settings.llm) as backend:
        yield backend


async def purge_on_schedule(runtime: Runtime) -> None:
    """Apply the retention period at start and then every ``purge_interval_s``, off the event loop; a busy store
    is tried again at the next turn."""
    while True:
        try:
            await run_in_threadpool(runtime.purge_expired)
        except StoreBusy as error:
            logger.warning("retention purge postponed: %s", error)
        await asyncio.sleep(runtime.settings.purge_interval_s)


def app_from_environment() -> FastAPI:
    """The app of one worker process of ``shoprec serve --workers N``: its settings come from $SHOPREC_SERVING_SETTINGS
    (uvicorn starts workers from an import string, so they cannot be handed an object). The LLM's API key is not
    in that JSON (secrets are dumped masked): it is read from $SHOPREC_LLM_API_KEY again."""
    settings = ServingSettings.model_validate_json(os.environ[SETTINGS_ENV])
    llm = LLMSettings.from_environment(**settings.llm.model_dump(exclude={"api_key"}))
    return create_app(settings.model_copy(update={"llm": llm}))


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
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        feeds = MicroBatcher[FeedRequest, RecommendationList](lambda batch: runtime.pipeline.recommend_many(batch))
        app.state.feeds = feeds
        purging = None if settings.retention_days is None else asyncio.create_task(purge_on_schedule(runtime))
        try:
            async with llm_backend(settings) as llm:
                runtime.llm = llm
                yield
        finally:
            if purging is not None:
                purging.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purging
            feeds.close()
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
    app.add_middleware(MetricsMiddleware, metrics=runtime.metrics)  # added last: it also times the guard's answers
    install_error_handlers(app)
    for module in (users, privacy, items, search, events, admin, assistant):
        app.include_router(module.router)
    return app
