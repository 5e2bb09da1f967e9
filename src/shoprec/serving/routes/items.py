"""Catalog items: similar items, and adding or updating items."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi import Path as PathParam

from shoprec.serving.deps import (
    ID_LENGTH,
    Reads,
    User,
    Writes,
    as_json,
    check_batch,
    get_pipeline,
    get_runtime,
    get_settings,
    query_user,
    similar_k,
    validate_each,
)
from shoprec.serving.errors import ApiError, documented
from shoprec.serving.pipeline import Pipeline
from shoprec.serving.runtime import Runtime
from shoprec.serving.schemas import ItemBatch, ItemIn, ItemsAccepted, SimilarList
from shoprec.serving.settings import ServingSettings

router = APIRouter(prefix="/v1/items", tags=["items"])
ItemId = Annotated[str, PathParam(min_length=1, max_length=ID_LENGTH)]


@router.get(
    "/{item_id}/similar",
    dependencies=Reads,
    summary="Items similar to an item",
    response_model=SimilarList,
    responses=documented(401, 404, 422, 503),
)
def similar(
    item_id: ItemId,
    pipeline: Annotated[Pipeline, Depends(get_pipeline)],
    runtime: Annotated[Runtime, Depends(get_runtime)],
    k: Annotated[int, Depends(similar_k)],
    user: Annotated[User | None, Depends(query_user)],
) -> Response:
    """Items like ``item_id`` in the model's space and by text; with ``user_id``, blended with the user's taste."""
    try:
        result = pipeline.similar(item_id, k, None if user is None else user.id)
    except KeyError:
        raise ApiError(404, f"unknown item {item_id!r}", "item_id") from None
    runtime.metrics.items_served.labels(route="similar").inc(len(result.items))
    return as_json(result)


@router.post(
    "", dependencies=Writes, summary="Add or update catalog items", responses=documented(400, 401, 413, 422, 503)
)
def post_items(
    batch: ItemBatch,
    runtime: Annotated[Runtime, Depends(get_runtime)],
    settings: Annotated[ServingSettings, Depends(get_settings)],
) -> ItemsAccepted:
    """Insert or update items in one transaction; new items are placed by their text and served at once.

    All or nothing: a catalog batch is one change, so any invalid item is a 422 listing every bad index.
    """
    check_batch(len(batch.items), settings.max_batch, "items")
    valid, rejected = validate_each(ItemIn, batch.items)
    if rejected:
        first = rejected[0]
        raise ApiError(
            422,
            f"{len(rejected)} invalid item(s), none stored; first: items.{first.index}.{first.field}: {first.message}",
            f"items.{first.index}.{first.field}",
            [error.model_dump() for error in rejected],
        )
    return runtime.upsert_items([item for _, item in valid])
