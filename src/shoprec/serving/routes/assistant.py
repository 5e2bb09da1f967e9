"""The shopping assistant: chat turns (JSON or server-sent events), product questions and similar items chosen by
the LLM. Each answer names only items the ranking retrieved, and answers 503 saying why when no LLM is available
(feeds, search and every other route are unaffected: the LLM is never on their path)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from shoprec.llm.assistant import AssistantOptions, FollowUp, Turn, chat_stream
from shoprec.llm.backends import ChatBackend
from shoprec.llm.errors import LLMBadOutput, LLMBadRequest, LLMTimeout, LLMUnavailable
from shoprec.llm.product import ask, similar
from shoprec.llm.prompts import Prompts
from shoprec.serving.deps import (
    ID_LENGTH,
    Reads,
    User,
    as_json,
    get_pipeline,
    get_runtime,
    path_user,
    pseudonymous,
    runtime_of,
)
from shoprec.serving.errors import ApiError, documented
from shoprec.serving.pipeline import Pipeline
from shoprec.serving.runtime import Runtime
from shoprec.serving.schemas import (
    AskIn,
    ChatIn,
    ChatTurn,
    GroundingCounts,
    ItemAnswer,
    LLMSimilarList,
    PickedItem,
    ShownItem,
)

router = APIRouter(tags=["assistant"], dependencies=Reads)
ItemId = Annotated[str, PathParam(min_length=1, max_length=ID_LENGTH)]
PROMPTS = Prompts()
ANONYMOUS = ""  # the stored owner of an anonymous conversation: its session id alone continues it
LLM_STATUSES = (502, 503, 504)


async def get_llm(request: Request) -> ChatBackend:
    return runtime_of(request).llm


@contextmanager
def llm_errors() -> Iterator[None]:
    """An LLM that is missing, slow or wrong answers 503, 504 or 502 in the JSON error envelope."""
    try:
        yield
    except LLMUnavailable as error:
        raise ApiError(503, f"the assistant is unavailable: {error}") from None
    except LLMTimeout as error:
        raise ApiError(504, f"the assistant did not answer in time: {error}") from None
    except (LLMBadOutput, LLMBadRequest) as error:
        raise ApiError(502, f"the assistant's model failed: {error}") from None


@router.post(
    "/v1/chat",
    summary="One turn of a conversation with the shopping assistant",
    response_model=ChatTurn,
    responses={
        **documented(401, 413, 422, *LLM_STATUSES),
        200: {"content": {"text/event-stream": {}}, "description": "JSON, or server-sent events with stream=true"},
    },
)
async def chat(
    body: ChatIn,
    pipeline: Annotated[Pipeline, Depends(get_pipeline)],
    runtime: Annotated[Runtime, Depends(get_runtime)],
    llm: Annotated[ChatBackend, Depends(get_llm)],
) -> Response:
    """Understand the message (a follow-up in the same session refines the last turn), retrieve and rank within its
    constraints, and answer in the shopper's language naming only retrieved items, each with a reason from the
    ranking and the item's fields."""
    user = None if body.user_id is None else pseudonymous(runtime, body.user_id)
    owner = ANONYMOUS if user is None else user.id
    session = body.session_id or uuid.uuid4().hex
    shop = await asyncio.to_thread(pipeline.shop)  # a store read, and a rebuild after catalog writes
    stored = None if body.session_id is None else await asyncio.to_thread(pipeline.store.last_chat_turn, session, owner)
    previous = None if stored is None else FollowUp.from_json(stored)
    history = await asyncio.to_thread(pipeline.assistant_history, shop, None if user is None else user.id)
    options = AssistantOptions(rewrite=runtime.rewrite_options)
    pieces = chat_stream(body.message, previous, shop, history, llm, PROMPTS, options, runtime.rewrites)

    async def finish(turn: Turn) -> ChatTurn:
        await asyncio.to_thread(pipeline.store.add_chat_turn, session, owner, FollowUp.of(turn).to_json())
        return _chat_turn(session, turn, llm.model)

    if not body.stream:
        with llm_errors():
            async for piece in pieces:
                if isinstance(piece, Turn):
                    return as_json(await finish(piece))
        raise AssertionError("a chat stream ends with its turn")
    with llm_errors():  # a backend that is missing fails before the first byte, as a plain error
        first = await anext(pieces)

    async def events() -> AsyncIterator[str]:
        piece: str | Turn = first
        while True:
            if isinstance(piece, Turn):
                yield _event("turn", (await finish(piece)).model_dump(mode="json"))
                return
            yield _event("delta", {"text": piece})
            try:
                piece = await anext(pieces)
            except (LLMUnavailable, LLMTimeout, LLMBadOutput, LLMBadRequest) as error:
                yield _event("error", {"message": f"{type(error).__name__}: {error}"})
                return

    return StreamingResponse(events(), media_type="text/event-stream")


@router.post(
    "/v1/items/{item_id}/ask",
    summary="Ask a question about a product",
    response_model=ItemAnswer,
    responses=documented(401, 404, 413, 422, *LLM_STATUSES),
)
async def ask_item(
    item_id: ItemId,
    body: AskIn,
    pipeline: Annotated[Pipeline, Depends(get_pipeline)],
    llm: Annotated[ChatBackend, Depends(get_llm)],
) -> Response:
    """Answered from the item's catalog fields only; "not stated" (in the asker's language) when they do not say."""
    shop = await asyncio.to_thread(pipeline.shop)  # a store read, and a rebuild after catalog writes
    if item_id not in shop.items.positions:
        raise ApiError(404, f"unknown item {item_id!r}", "item_id")
    with llm_errors():
        answer = await ask(shop.facts(shop.items.index(item_id)), body.question, llm, PROMPTS)
    return as_json(
        ItemAnswer(
            item_id=answer.item_id,
            question=answer.question,
            answer=answer.text,
            stated=answer.stated,
            language=answer.language,
            template=answer.template,
            template_version=answer.version,
            model=llm.model,
            latency_ms=answer.latency_s * 1e3,
        )
    )


@router.get(
    "/v1/users/{user_id}/items/{item_id}/similar-by-llm",
    summary="Items similar to the one a user views, chosen by the LLM",
    response_model=LLMSimilarList,
    responses=documented(401, 404, 422, *LLM_STATUSES),
)
async def similar_by_llm(
    user: Annotated[User, Depends(path_user)],
    item_id: ItemId,
    pipeline: Annotated[Pipeline, Depends(get_pipeline)],
    llm: Annotated[ChatBackend, Depends(get_llm)],
) -> Response:
    """The article's prompt: "recommend 5 items similar to what the user is viewing, considering its category, the
    user's purchases of the last 6 months, its function and the user's preferences", filled with the user's real
    history; the LLM chooses among the similar-items ranking's candidates only."""
    shop = await asyncio.to_thread(pipeline.shop)  # a store read, and a rebuild after catalog writes
    if item_id not in shop.items.positions:
        raise ApiError(404, f"unknown item {item_id!r}", "item_id")
    history = await asyncio.to_thread(pipeline.assistant_history, shop, user.id)
    with llm_errors():
        found = await similar(item_id, history, shop, llm, PROMPTS, now=time.time())
    return as_json(
        LLMSimilarList(
            item_id=found.item_id,
            items=[PickedItem(**asdict(pick)) for pick in found.items],
            candidates=list(found.candidates),
            note=found.note,
            history_shown=found.history_shown,
            history_window="time" if found.timed else "count",
            template=found.template,
            template_version=found.version,
            model=llm.model,
            fallback=found.fallback,
            latency_ms=found.latency_s * 1e3,
        )
    )


def _chat_turn(session: str, turn: Turn, model: str) -> ChatTurn:
    return ChatTurn(
        session_id=session,
        answer=turn.answer,
        language=turn.language,
        intent=turn.intent.model_dump(mode="json"),
        items=[ShownItem(**asdict(shown)) for shown in turn.items],
        counts=GroundingCounts(**asdict(turn.counts)),
        template=turn.template,
        template_version=turn.version,
        model=model,
        fallback=turn.fallback,
        notes=list(turn.notes),
        latency_ms=turn.latency_s * 1e3,
        first_token_ms=turn.first_token_s * 1e3,
        first_remark_ms=None if turn.first_remark_s is None else turn.first_remark_s * 1e3,
    )


def _event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
