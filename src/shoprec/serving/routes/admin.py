"""Operations: reload the model, health, Prometheus metrics."""

from __future__ import annotations

import os
import signal
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from shoprec.serving.deps import Writes, get_runtime
from shoprec.serving.errors import ApiError, documented
from shoprec.serving.runtime import Runtime
from shoprec.serving.schemas import Health, ReloadRequest, ReloadScheduled

router = APIRouter(tags=["admin"])


@router.post(
    "/v1/admin/reload",
    dependencies=Writes,
    summary="Reload the model",
    response_model=Health,
    responses={
        202: {"model": ReloadScheduled, "description": "Several workers: a rolling restart began."},
        **documented(400, 401, 409, 422, 503),
    },
)
async def reload(
    runtime: Annotated[Runtime, Depends(get_runtime)],
    request: Annotated[ReloadRequest | None, Body()] = None,
) -> Any:
    """Load the model directory again, or ``model_dir``, then swap it in; requests in flight finish on the old
    model, and a directory that fails to load is a 400 while the old model keeps serving.

    With several worker processes, each must load it: the supervisor restarts them one at a time (each new one
    serves before its old one stops) and this answers 202 at once. They reload the directory they serve, so a
    new ``model_dir`` is a 409 there: point that directory (a symlink) at the new model instead.
    """
    directory = None if request is None else request.model_dir
    workers = runtime.settings.workers
    if workers > 1:
        if directory is not None and directory != runtime.model_dir:
            raise ApiError(
                409, f"{workers} workers serve {runtime.model_dir}: they can only reload that directory", "model_dir"
            )
        os.kill(os.getppid(), signal.SIGHUP)  # uvicorn's supervisor: a rolling restart of every worker
        scheduled = ReloadScheduled(workers=workers, model_dir=runtime.model_dir)
        return JSONResponse(scheduled.model_dump(mode="json"), status_code=202)
    try:
        return await run_in_threadpool(runtime.reload, directory)
    except (ValueError, FileNotFoundError) as error:
        raise ApiError(400, f"model not reloaded: {error}", "model_dir") from None


# Plain def: both count the stored events (one query), so they run on the worker threads.
@router.get("/health", summary="Liveness, model version and counts", responses=documented(503))
def health(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Health:
    return runtime.health()


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, responses=documented(503))
def metrics(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Response:
    return Response(runtime.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
