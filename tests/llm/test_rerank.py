"""The LLM re-ranking stage on a real llama.cpp server (SmolLM2) over a real Beauty slice ranked by ItemKNN: it
only reorders the candidates it was given, weight 0 is the base order exactly, averaging the two listings removes
the position of a candidate from its score, and a model that cannot answer leaves the base order with a note."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import replace

import numpy as np
import pytest
from pydantic import ValidationError

from shoprec.data.dataset import Dataset
from shoprec.data.split import hold_out_last
from shoprec.llm.backends import OpenAIChat, UnavailableChat
from shoprec.llm.local import LocalServer
from shoprec.llm.prompts import Prompts, Rendered
from shoprec.llm.prompts.build import ranking_rerank_context, rerank_context
from shoprec.llm.prompts.context import HistoryWindow
from shoprec.llm.rerank import LetterLogprobs, LLMRerankConfig, LLMReRanker, LoopAsk, background_ask, llm_scores
from shoprec.llm.settings import LLMSettings
from shoprec.models.base import TrainData
from shoprec.models.itemknn import ItemKNN
from shoprec.ranking.items import ItemIndex, catalog_records, model_items
from shoprec.ranking.recommend import Ranker
from shoprec.ranking.stages import ModelScorer
from shoprec.ranking.types import Ranked, Request

SMALL = {"candidates": 5, "history": 3}  # short prompts keep each test to a few seconds on SmolLM2


@pytest.fixture(scope="module")
def base(beauty: Dataset) -> tuple[ItemKNN, ItemIndex, list[Request]]:
    train, _ = hold_out_last(beauty.sequences)
    model = ItemKNN()
    model.fit(TrainData(beauty.items.size, train))
    items = model_items(model, beauty.items.ids, records=catalog_records(beauty, beauty.items.ids))
    rows = np.flatnonzero(train.lengths() >= 4)[:3]
    return model, items, [Request(train.row(int(row)), k=8) for row in rows]


@pytest.fixture(scope="module")
def ask(server: LocalServer, llm_settings: LLMSettings) -> Iterator[LoopAsk]:
    with background_ask(lambda: OpenAIChat(llm_settings, server.base_url)) as loop_ask:
        yield loop_ask


def ranked(model: ItemKNN, items: ItemIndex, requests: list[Request], stage: LLMReRanker | None) -> list[Ranked]:
    return Ranker(ModelScorer(model), rerankers=(stage,) if stage else ()).rank(requests, items)


def test_the_stage_only_reorders_the_candidates_it_was_given(
    base: tuple[ItemKNN, ItemIndex, list[Request]], ask: LoopAsk
) -> None:
    model, items, requests = base
    before = ranked(model, items, requests, None)
    after = ranked(model, items, requests, LLMReRanker(ask, LLMRerankConfig(weight=1.0, **SMALL)))
    for plain, reranked in zip(before, after, strict=True):
        assert sorted(reranked.items[:5].tolist()) == sorted(plain.items[:5].tolist())
        assert reranked.items[5:].tolist() == plain.items[5:].tolist()  # past the N candidates nothing moves
        assert reranked.notes == ()
    assert any(a.items.tolist() != b.items.tolist() for a, b in zip(before, after, strict=True))


def test_weight_zero_is_the_base_order_exactly_and_the_prior_is_asked_once(
    base: tuple[ItemKNN, ItemIndex, list[Request]], ask: LoopAsk
) -> None:
    model, items, requests = base
    asked: list[int] = []

    def counting(prompts: Sequence[Rendered], top_logprobs: int) -> list[LetterLogprobs]:
        asked.append(len(prompts))
        return ask(prompts, top_logprobs)

    after = ranked(model, items, requests, LLMReRanker(counting, LLMRerankConfig(weight=0.0, **SMALL)))
    assert [r.items.tolist() for r in after] == [r.items.tolist() for r in ranked(model, items, requests, None)]
    assert asked == [3, 2, 2]  # forward, reversed and (for the first request only) the content-free prompt


def test_averaging_both_listings_scores_an_item_the_same_wherever_it_is_listed(
    base: tuple[ItemKNN, ItemIndex, list[Request]], ask: LoopAsk
) -> None:
    """SmolLM2 picks by position: listed forward only, an item's score depends on where it stands; averaged over
    the forward and the reversed listing it does not (up to the server's float noise across cached prompts)."""
    model, items, requests = base
    stage = LLMReRanker(ask, LLMRerankConfig(weight=1.0, **SMALL))
    head = ranked(model, items, requests[:1], None)[0].items[:5]
    listed = stage.letters(requests[0], items, head)
    flipped = stage.letters(requests[0], items, head[::-1])
    both = llm_scores(listed, "both", calibrate=True), llm_scores(flipped, "both", calibrate=True)[::-1]
    forward = llm_scores(listed, "forward", calibrate=True), llm_scores(flipped, "forward", calibrate=True)[::-1]
    np.testing.assert_allclose(both[0], both[1], atol=0.2)
    # Listed forward only, some item's score moves with its place by well past that float noise (seen: 0.50 to 0.72
    # against 0.04 to 0.06 averaged over both listings).
    moved, noise = np.abs(forward[0] - forward[1]).max(), np.abs(both[0] - both[1]).max()
    assert moved > max(0.3, 3 * noise)
    tied = np.zeros(len(items))  # equal base scores: the order is the LLM's alone
    one = stage.rerank(requests[0], items, head, tied)[0].tolist()
    other = stage.rerank(requests[0], items, head[::-1], tied)[0].tolist()
    score = dict(zip(head.tolist(), both[0], strict=True))
    for a in head.tolist():
        for b in head.tolist():
            if score[a] > score[b] + 0.4:  # clear of the noise: both listings put a before b
                assert one.index(a) < one.index(b) and other.index(a) < other.index(b)


def test_more_letters_than_the_alphabet_are_refused_and_a_longer_pool_keeps_its_tail(
    base: tuple[ItemKNN, ItemIndex, list[Request]], ask: LoopAsk
) -> None:
    model, items, requests = base
    with pytest.raises(ValidationError, match="candidates"):
        LLMRerankConfig(weight=0.5, candidates=27)
    stage = LLMReRanker(ask, LLMRerankConfig(weight=0.5, **SMALL))
    pool = ranked(model, items, requests[:1], None)[0].items
    with pytest.raises(ValueError, match="1 to 5 candidates"):
        stage.letters(requests[0], items, pool[:6])
    assert stage.pool(replace(requests[0], k=10)) == 5  # the Ranker still takes k: the rest keep their places


@pytest.mark.parametrize("failure", ["unavailable", "timeout"])
def test_a_model_that_cannot_answer_leaves_the_base_order_and_says_so(
    base: tuple[ItemKNN, ItemIndex, list[Request]],
    server: LocalServer,
    llm_settings: LLMSettings,
    failure: str,
) -> None:
    model, items, requests = base

    def open_chat() -> nullcontext[UnavailableChat] | OpenAIChat:
        return nullcontext(UnavailableChat()) if failure == "unavailable" else OpenAIChat(llm_settings, server.base_url)

    with background_ask(open_chat, time_budget_s=0.001) as unanswered:
        after = ranked(model, items, requests, LLMReRanker(unanswered, LLMRerankConfig(weight=1.0, **SMALL)))
    assert [r.items.tolist() for r in after] == [r.items.tolist() for r in ranked(model, items, requests, None)]
    said = "no LLM backend is configured" if failure == "unavailable" else "time budget"
    for result in after:
        assert len(result.notes) == 1 and "LLM re-ranking was skipped" in result.notes[0] and said in result.notes[0]


def test_asking_on_the_backends_own_loop_is_refused_not_a_deadlock(ask: LoopAsk) -> None:
    async def inside() -> None:
        ask([], 20)

    with pytest.raises(RuntimeError, match="worker thread"):
        asyncio.run_coroutine_threadsafe(inside(), ask.loop).result(timeout=10)


def test_the_stage_prompt_is_the_datasets_rerank_prompt(
    base: tuple[ItemKNN, ItemIndex, list[Request]], beauty: Dataset
) -> None:
    """Built from the ranking's item view (serving, the pipeline) or from the data set (offline), the same history
    and candidates give the same prompt."""
    _, items, _ = base
    row = int(np.flatnonzero(beauty.sequences.lengths() >= 25)[0])
    history, candidates = beauty.sequences.row(row)[:24], np.array([5, 9, 2])
    prompts = Prompts()
    from_data = prompts.render(rerank_context(beauty, row, 24, candidates.tolist()))
    from_items = prompts.render(ranking_rerank_context(items, history, candidates, HistoryWindow().count))
    assert from_items == from_data and from_data.allowed == ("A", "B", "C")
