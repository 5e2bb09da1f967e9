"""Query rewriting never fails or stalls a search: English passes untouched, a missing, failing or slow model leaves
the query as written, and a rewrite is cached in memory and on disk."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from shoprec.llm.backends import ChatOptions, ChatResult, ChatStream, JsonResult, Message, UnavailableChat
from shoprec.llm.errors import LLMBadOutput
from shoprec.llm.local import LocalServer
from shoprec.llm.prompts import Prompts
from shoprec.llm.rewrite import REWRITE_OPTIONS, RewriteCache, cleaned, rewrite
from shoprec.llm.settings import LLMSettings

from .conftest import with_chat

PROMPTS = Prompts()
PATIENT = REWRITE_OPTIONS.model_copy(update={"time_budget_s": 60.0})  # shared cores: the 3 s budget is for serving
# SmolLM2-135M knows no Chinese; greedy, without the examples, it answers this mixed query with "nail polish."
MIXED = "nail polish 指甲油"


def test_an_english_query_never_reaches_the_model() -> None:
    unavailable = UnavailableChat()  # would put its reason in ``error`` had it been asked
    for query in ("nail polish remover", "OPI nail polish under $20", "nail polish by OPI, no 迪奥"):
        done = asyncio.run(rewrite(query, unavailable, PROMPTS, RewriteCache()))
        assert (done.text, done.source_language, done.error, done.cached) == (query, "en", None, False)


def test_without_a_model_the_chinese_query_is_searched_as_written() -> None:
    alone = asyncio.run(rewrite("防水睫毛膏", None, PROMPTS, RewriteCache()))
    assert (alone.text, alone.source_language, alone.error) == ("防水睫毛膏", "zh", "no LLM backend")
    down = asyncio.run(rewrite("防水睫毛膏", UnavailableChat("server down"), PROMPTS, RewriteCache()))
    assert down.text == "防水睫毛膏" and down.error == "LLMUnavailable: server down"


def test_a_model_past_its_budget_leaves_the_query_as_written(server: LocalServer, llm_settings: LLMSettings) -> None:
    hurried = REWRITE_OPTIONS.model_copy(update={"time_budget_s": 0.001})
    done = with_chat(
        llm_settings, server.base_url, lambda chat: rewrite("吹风机", chat, PROMPTS, None, options=hurried)
    )
    assert done.text == "吹风机" and done.error is not None and done.error.startswith("LLMTimeout")


class _Hanging:
    """A backend that ignores its time budget: ``rewrite`` must still answer within it."""

    model = "hanging"

    async def chat(self, messages: Sequence[Message], options: ChatOptions | None = None) -> ChatResult:
        await asyncio.sleep(30)
        raise AssertionError("the rewrite should have given up")

    async def chat_json(
        self, messages: Sequence[Message], schema: Mapping[str, Any], options: ChatOptions | None = None
    ) -> JsonResult:
        raise NotImplementedError

    def stream(self, messages: Sequence[Message], options: ChatOptions | None = None) -> ChatStream:
        raise NotImplementedError


def test_a_backend_that_ignores_the_budget_is_cut_off_at_it() -> None:
    quick = REWRITE_OPTIONS.model_copy(update={"time_budget_s": 0.2})
    done = asyncio.run(rewrite("卷发棒", _Hanging(), PROMPTS, RewriteCache(), options=quick))
    assert done.text == "卷发棒" and done.latency < 1.0
    assert done.error == "LLMTimeout: no answer within the time budget of 0.2 s"


def test_a_rewrite_is_cached_in_memory_and_on_disk(
    server: LocalServer, llm_settings: LLMSettings, tmp_path: Path
) -> None:
    path = tmp_path / "rewrites.sqlite3"

    async def twice(chat: Any) -> list[Any]:
        cache = RewriteCache(path=path)
        first = await rewrite(MIXED, chat, PROMPTS, cache, examples=False, options=PATIENT)
        second = await rewrite(MIXED, chat, PROMPTS, cache, examples=False, options=PATIENT)
        restarted = await rewrite(MIXED, chat, PROMPTS, RewriteCache(path=path), examples=False, options=PATIENT)
        other_prompt = await rewrite(MIXED, chat, PROMPTS, cache, examples=True, options=PATIENT)
        return [first, second, restarted, other_prompt]

    first, second, restarted, other_prompt = with_chat(llm_settings, server.base_url, twice)
    assert (first.text, first.error, first.cached) == ("nail polish", None, False)
    assert (second.text, second.cached) == (restarted.text, restarted.cached) == ("nail polish", True)
    assert second.latency < first.latency
    assert not other_prompt.cached  # another rendering is another key


def test_the_memory_cache_keeps_the_most_recently_used() -> None:
    cache = RewriteCache(size=2)
    cache.put("a", "1")
    cache.put("b", "2")
    assert cache.get("a") == "1"  # "a" is now the most recent
    cache.put("c", "3")
    assert (cache.get("a"), cache.get("b"), cache.get("c"), len(cache)) == ("1", None, "3", 2)
    with pytest.raises(ValueError, match="positive"):
        RewriteCache(size=0)


def test_a_locked_cache_file_is_a_miss_not_a_failure(tmp_path: Path) -> None:
    path = tmp_path / "rewrites.sqlite3"
    RewriteCache(path=path).put("kept", "nail polish")
    fresh = RewriteCache(path=path)  # nothing in its memory yet
    with closing(sqlite3.connect(path)) as other:
        other.execute("BEGIN EXCLUSIVE")  # another process writing
        assert fresh.get("kept") is None
        fresh.put("new", "shampoo")  # not written, and no exception
        assert fresh.get("new") == "shampoo"  # still served from memory
    assert RewriteCache(path=path).get("kept") == "nail polish"


@pytest.mark.parametrize(
    ("answer", "text"),
    [
        (" nail polish remover", "nail polish remover"),
        ('"Waterproof mascara."\nThis is the English query.', "Waterproof mascara"),
        ("English: body lotion for dry skin", "body lotion for dry skin"),
        ("Dior lipstick under 100 yuan", "Dior lipstick under 100 yuan"),
    ],
)
def test_the_query_is_read_out_of_the_answer(answer: str, text: str) -> None:
    assert cleaned(answer, "en") == text


@pytest.mark.parametrize(
    ("answer", "finish_reason", "why"),
    [
        ("吹风机", "stop", "not in en"),
        ("Wet睫毛膏", "stop", "not in en"),
        ("  \n ", "stop", "no rewrite"),
        ("The product is a product made from a", "length", "runs on"),
        ("睫毛夹 => eyelash curler", "stop", "recites"),
    ],
)
def test_an_answer_that_is_not_a_rewrite_is_refused(answer: str, finish_reason: str, why: str) -> None:
    with pytest.raises(LLMBadOutput, match=why):
        cleaned(answer, "en", finish_reason)
