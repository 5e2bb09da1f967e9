"""Plain-language search over the catalog."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from shoprec.llm.backends import UnavailableChat
from shoprec.llm.prompts import Prompts
from shoprec.llm.rewrite import rewrite
from shoprec.serving.deps import Reads, User, as_json, feed_k, get_pipeline, get_runtime, query_user
from shoprec.serving.errors import documented
from shoprec.serving.pipeline import Pipeline
from shoprec.serving.runtime import Runtime
from shoprec.serving.schemas import SearchResults

router = APIRouter(tags=["search"], dependencies=Reads)
PROMPTS = Prompts()


@router.get(
    "/v1/search",
    summary="Search the catalog in plain language",
    response_model=SearchResults,
    responses=documented(401, 422, 503),
)
async def search(
    q: Annotated[str, Query(min_length=1, max_length=500, description='e.g. "red nail polish under $10"')],
    pipeline: Annotated[Pipeline, Depends(get_pipeline)],
    runtime: Annotated[Runtime, Depends(get_runtime)],
    k: Annotated[int, Depends(feed_k)],
    user: Annotated[User | None, Depends(query_user)],
) -> Response:
    """Items matching the query's text and its price and category constraints, personalised with ``user_id``.
    A query in another language than the catalog's (Chinese on an English catalog) is first rewritten by the
    assistant's LLM: cached, within a few seconds at most, and searched as written when no LLM answers in time."""
    llm = None if isinstance(runtime.llm, UnavailableChat) else runtime.llm
    target = (await asyncio.to_thread(pipeline.shop)).language  # a store read, and a rebuild after catalog writes
    rewritten = await rewrite(q, llm, PROMPTS, runtime.rewrites, target=target, options=runtime.rewrite_options)
    searched = rewritten.text if rewritten.text != q else None
    result = await asyncio.to_thread(lambda: pipeline.search(q, k, None if user is None else user.id, searched))
    runtime.metrics.items_served.labels(route="search").inc(len(result.items))
    return as_json(result)
