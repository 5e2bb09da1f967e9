"""A user's home feed and why an item is in it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam

from shoprec.ranking.types import Knobs
from shoprec.serving.batching import MicroBatcher
from shoprec.serving.deps import (
    ID_LENGTH,
    ListLength,
    Reads,
    User,
    as_json,
    bounded_k,
    get_pipeline,
    path_user,
    runtime_of,
)
from shoprec.serving.errors import ApiError, documented
from shoprec.serving.pipeline import FeedRequest, Pipeline
from shoprec.serving.schemas import Explanation, RecommendationList

router = APIRouter(prefix="/v1/users/{user_id}", tags=["users"], dependencies=Reads)
ItemId = Annotated[str, PathParam(min_length=1, max_length=ID_LENGTH)]


@router.get(
    "/recommendations",
    summary="Recommendations for a user",
    response_model=RecommendationList,
    responses=documented(401, 422, 503),
)
async def recommendations(
    request: Request,
    user: Annotated[User, Depends(path_user)],
    k: ListLength = 10,
    category: Annotated[
        str | None, Query(max_length=1_000, description='Only items with this category level, e.g. "Nails".')
    ] = None,
    exclude_seen: Annotated[bool, Query(description="Leave out every item the user interacted with.")] = True,
    diversity: Annotated[
        float,
        Query(
            ge=0.0,
            le=1.0,
            description="0: the model's order. Up to 1: each next item also pays for its likeness to those above "
            "it (maximal marginal relevance in the model's item space).",
        ),
    ] = 0.0,
    calibration: Annotated[
        float,
        Query(
            ge=0.0,
            le=1.0,
            description="0: the model's order. Up to 1: the list's category mix follows the user's history "
            "(Steck's calibration).",
        ),
    ] = 0.0,
    tail_share: Annotated[
        float,
        Query(
            ge=0.0,
            le=1.0,
            description="At least this share of the list goes to long-tail items (the less-bought half of the "
            "catalogue, new items included), the best-scored of them.",
        ),
    ] = 0.0,
    provider_share: Annotated[
        float,
        Query(
            ge=0.0,
            le=1.0,
            description="At least this share of the list goes to items of small providers (the less-bought half "
            "of the brands, or of the categories where the catalogue has no brands), the best-scored of them.",
        ),
    ] = 0.0,
    popularity_correction: Annotated[
        float,
        Query(
            ge=0.0,
            le=1.0,
            description="0: the model's scores. Up to 1: each item's score loses this much of the log of its "
            "training popularity (inverse-propensity weighting), so well-matched less-bought items rise.",
        ),
    ] = 0.0,
) -> Response:
    """The user's next items from their whole stored history; an unknown user gets a popular cold-start list.
    Feeds that arrive together share one model forward (micro-batched off the event loop)."""
    # The hottest route takes the runtime and the batcher off the request rather than as dependencies: FastAPI
    # solves each dependency on every request (three fewer: 200 feeds in process, 1,719M -> 1,676M instructions).
    runtime = runtime_of(request)
    feeds: MicroBatcher[FeedRequest, RecommendationList] = request.app.state.feeds
    if diversity > 0 and calibration > 0:  # two greedy list objectives: the later would undo the earlier
        raise ApiError(422, "diversity and calibration are alternatives: set one of them", "query.calibration")
    asked = FeedRequest(
        user.id,
        user.raw,
        bounded_k(runtime.settings, k),
        category or None,
        exclude_seen,
        Knobs(
            diversity=diversity,
            calibration=calibration,
            tail_share=tail_share,
            provider_share=provider_share,
            popularity_correction=popularity_correction,
        ),
    )
    result = await feeds.submit(asked)
    runtime.metrics.items_served.labels(route="recommendations").inc(len(result.items))
    return as_json(result)


@router.get(
    "/recommendations/{item_id}/explain",
    summary="Why an item for a user",
    response_model=Explanation,
    responses=documented(401, 404, 422, 503),
)
def explain(
    user: Annotated[User, Depends(path_user)],
    item_id: ItemId,
    pipeline: Annotated[Pipeline, Depends(get_pipeline)],
) -> Response:
    """The item's score and rank for the user, and how much each history item the model reads added to it."""
    try:
        return as_json(pipeline.explain(user.id, user.raw, item_id))
    except KeyError:
        raise ApiError(404, f"unknown item {item_id!r}", "item_id") from None
