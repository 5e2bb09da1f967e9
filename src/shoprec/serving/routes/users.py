"""A user's home feed and why an item is in it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam

from shoprec.serving.batching import MicroBatcher
from shoprec.serving.deps import ID_LENGTH, Reads, User, as_json, feed_k, get_pipeline, get_runtime, path_user
from shoprec.serving.errors import ApiError, documented
from shoprec.serving.pipeline import FeedRequest, Pipeline
from shoprec.serving.runtime import Runtime
from shoprec.serving.schemas import Explanation, RecommendationList

router = APIRouter(prefix="/v1/users/{user_id}", tags=["users"], dependencies=Reads)
ItemId = Annotated[str, PathParam(min_length=1, max_length=ID_LENGTH)]


async def get_feeds(request: Request) -> MicroBatcher[FeedRequest, RecommendationList]:
    feeds: MicroBatcher[FeedRequest, RecommendationList] = request.app.state.feeds
    return feeds


@router.get(
    "/recommendations",
    summary="Recommendations for a user",
    response_model=RecommendationList,
    responses=documented(401, 422, 503),
)
async def recommendations(
    user: Annotated[User, Depends(path_user)],
    feeds: Annotated[MicroBatcher[FeedRequest, RecommendationList], Depends(get_feeds)],
    runtime: Annotated[Runtime, Depends(get_runtime)],
    k: Annotated[int, Depends(feed_k)],
    category: Annotated[
        str | None, Query(max_length=1_000, description='Only items with this category level, e.g. "Nails".')
    ] = None,
    exclude_seen: Annotated[bool, Query(description="Leave out every item the user interacted with.")] = True,
) -> Response:
    """The user's next items from their whole stored history; an unknown user gets a popular cold-start list.
    Feeds that arrive together share one model forward (micro-batched off the event loop)."""
    result = await feeds.submit(FeedRequest(user.id, user.raw, k, category or None, exclude_seen))
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
