"""The assistant on real catalog slices and a real SmolLM2 server: answers name only retrieved items, claims stay
within each item's fields, follow-ups narrow the constraints, and every call without a backend says so."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from conftest import Translator
from shoprec.data.dataset import Dataset
from shoprec.llm.answer import REMARK_SENTENCES
from shoprec.llm.assistant import (
    AssistantOptions,
    History,
    Shop,
    Turn,
    answer_writer,
    catalog_language,
    chat_stream,
    chat_turn,
    retrieve,
)
from shoprec.llm.backends import ChatOptions, OpenAIChat, UnavailableChat
from shoprec.llm.errors import LLMTimeout, LLMUnavailable
from shoprec.llm.grounding import complete_sentences
from shoprec.llm.intent import parse
from shoprec.llm.local import LocalServer
from shoprec.llm.product import ask, similar
from shoprec.llm.prompts import Prompts
from shoprec.llm.settings import LLMSettings
from shoprec.llm.wording import phrase

from .conftest import with_chat

PROMPTS = Prompts()
FAST = AssistantOptions(  # greedy and short: SmolLM2 writes a few picks in a few seconds
    intent=ChatOptions(max_tokens=160, seed=0, time_budget_s=60),
    answer=ChatOptions(max_tokens=160, seed=0, time_budget_s=60),
)
USER = 62  # a Beauty user with hair care in the history (see test_prompts)
SHISEIDO = "44600062"  # a REES46 item with brand and price (35.79 USD) and nothing else


@pytest.fixture(scope="module")
def roomy(llm_settings: LLMSettings) -> LLMSettings:
    return llm_settings.model_copy(update={"max_tokens": 200})  # the session's settings cap answers at 48 tokens


def _in_category(shop: Shop, item_id: str, name: str) -> bool:
    return bool(shop.items.in_categories([name])[shop.items.index(item_id)])


def _turns(shop: Shop, messages: list[str], history: History, settings: LLMSettings, base_url: str) -> list[Turn]:
    async def talk(chat: OpenAIChat) -> list[Turn]:
        turns: list[Turn] = []
        for message in messages:
            turns.append(await chat_turn(message, turns[-1] if turns else None, shop, history, chat, PROMPTS, FAST))
        return turns

    return with_chat(settings, base_url, talk)


# ---- grounding, on crafted answers (no model) --------------------------------------------------------------------


def test_a_catalog_speaks_the_language_of_most_of_its_titles(beauty_shop: Shop, rees46_shop: Shop) -> None:
    bieos = Path(__file__).resolve().parents[1] / "fixtures" / "zh_product_titles" / "dev.txt.bieos"
    titles = ["".join(line.split("\t")[0] for line in block.splitlines()) for block in bieos.read_text().split("\n\n")]
    assert catalog_language(titles) == "zh"
    assert (beauty_shop.language, rees46_shop.language) == ("en", "en")  # English titles; no titles at all
    assert catalog_language([*titles[:40], *beauty_shop.items.query_categories[:60]]) == "en"


def test_a_message_in_another_language_is_searched_as_the_llm_rewrote_it(beauty_shop: Shop) -> None:
    """The chat turn reads the Chinese message by rules and searches the rewrite, as search does."""
    translator = Translator()
    turn = asyncio.run(chat_turn("指甲油推荐", None, beauty_shop, History.empty(), translator, PROMPTS, FAST))  # type: ignore[arg-type]
    assert (turn.intent.language, turn.query, translator.calls) == ("zh", "nail polish", 1)
    assert turn.fallback is not None and turn.fallback.startswith("LLMTimeout")  # it writes no answers
    searched = retrieve(turn.intent, "nail polish", beauty_shop, History.empty(), FAST)
    assert turn.retrieved == tuple(entry.facts.item_id for entry in searched.items)
    as_written = retrieve(turn.intent, "指甲油推荐", beauty_shop, History.empty(), FAST)
    assert turn.retrieved != tuple(entry.facts.item_id for entry in as_written.items)


def test_the_items_come_first_and_a_sentence_naming_another_id_is_dropped_and_counted(beauty_shop: Shop) -> None:
    intent = parse("nail polish", beauty_shop.terms)
    retrieval = retrieve(intent, "nail polish", beauty_shop, History.empty(), FAST)
    writer = answer_writer("nail polish", retrieval, beauty_shop, History.empty(), FAST)
    listing = writer.listing()
    assert listing.startswith(phrase("en", "intro")) and listing.count("\n• ") == FAST.show
    assert [shown.item_id for shown in writer.shown] == [r.facts.item_id for r in retrieval.items[: FAST.show]]
    assert all(shown.reason in listing for shown in writer.shown)
    assert writer.remark("Also try [9999999], it is great.") is None
    assert writer.remark(f"The first one, [{writer.shown[0].item_id}], is a polish.") == (
        f"\nThe first one, [{writer.shown[0].item_id}], is a polish."
    )
    assert writer.remark("All are polishes.") == " All are polishes."
    assert writer.counts.dropped_ids == 1 and "9999999" not in writer.answer
    assert all(_in_category(beauty_shop, shown.item_id, "Nail Polish") for shown in writer.shown)


def test_a_claim_borrowed_from_the_history_is_dropped_and_counted(beauty: Dataset, beauty_shop: Shop) -> None:
    """The pilot's failure: an item credited with an ingredient of an item in the user's history."""
    argan = int(beauty.catalog.index[beauty.catalog["title"].str.contains("Argan Oil", na=False)][0])
    history = History(np.array([argan]))
    retrieval = retrieve(parse("conditioner", beauty_shop.terms), "conditioner", beauty_shop, history, FAST)
    assert not any("argan" in (r.facts.title or "").lower() for r in retrieval.items[: FAST.show])
    writer = answer_writer("conditioner", retrieval, beauty_shop, history, FAST)
    writer.listing()
    assert writer.remark("The first one is rich in argan oil.") is None
    assert writer.counts.unsupported_claims == 1 and "argan" not in writer.answer.lower()
    assert writer.remark("All three are conditioners.") == "\nAll three are conditioners."
    assert writer.remark("这几款都是护发素。") is None and writer.counts.wrong_language == 1  # not the shopper's


def test_a_sentence_that_recites_the_prompt_or_the_message_is_dropped_as_an_echo(beauty_shop: Shop) -> None:
    """What the 1.5B model wrote in 64 of 172 remarks: an item's prompt line, or the shopper's words back."""
    message = "我想买 Shampoos"
    retrieval = retrieve(parse(message, beauty_shop.terms), "shampoo", beauty_shop, History.empty(), FAST)
    writer = answer_writer(message, retrieval, beauty_shop, History.empty(), FAST)
    writer.listing()
    title = writer.shown[0].title
    assert writer.remark(f"{title} | category: Beauty > Hair Care > Shampoos") is None
    assert writer.remark("大洗发水 | 类别：美容 > 洗发水") is None
    assert writer.remark("我想买 shampoos。") is None
    assert writer.counts.echoed == 3 and writer.remarks == 0
    assert writer.remark("这几款都是洗发水。") == "\n这几款都是洗发水。"


def test_a_remark_is_read_sentence_by_sentence() -> None:
    assert complete_sentences("Nice. It costs $8.") == (["Nice."], "It costs $8.")  # "$8." may go on: "$8.99"
    assert complete_sentences("这款不错。另一款") == (["这款不错。"], "另一款")
    assert complete_sentences("No mark yet") == ([], "No mark yet")


# ---- turns with a real model -------------------------------------------------------------------------------------


def test_a_follow_up_narrows_the_constraints_turn_by_turn(
    rees46_shop: Shop, server: LocalServer, roomy: LLMSettings
) -> None:
    messages = ["samsung smartphone under $300", "cheaper", "not that brand"]
    first, cheaper, other = _turns(rees46_shop, messages, History.empty(), roomy, server.base_url)
    assert (first.intent.brand, first.intent.category, first.intent.max_price) == ("samsung", "smartphone", 300.0)
    lowest = min(shown.price for shown in first.items if shown.price is not None)
    assert cheaper.intent.max_price == lowest and other.intent.max_price == lowest
    assert other.intent.brand is None and "samsung" in other.intent.exclude_brands
    for turn in (first, cheaper, other):
        assert turn.items and {shown.item_id for shown in turn.items} <= set(turn.retrieved)
        for shown in turn.items:
            record = rees46_shop.items.items[rees46_shop.items.index(shown.item_id)]
            assert record is not None and record.price is not None and record.price <= turn.intent.max_price
            assert _in_category(rees46_shop, shown.item_id, "smartphone")
            assert (record.brand == "samsung") == (turn is not other)
    assert cheaper.query == first.query == "samsung smartphone"  # "cheaper" names nothing to search for


def test_a_chinese_message_gets_a_chinese_answer(beauty: Dataset, beauty_shop: Shop, server: LocalServer,
                                                 roomy: LLMSettings) -> None:  # fmt: skip
    history = History(beauty.sequences.row(USER))
    (turn,) = _turns(beauty_shop, ["我想买 Nail Polish，有什么推荐？"], history, roomy, server.base_url)
    assert turn.language == "zh" and turn.answer_language == "zh"
    assert len(turn.items) == FAST.show and all(_in_category(beauty_shop, s.item_id, "Nail Polish") for s in turn.items)
    assert (turn.template, turn.version) == ("chat", PROMPTS.version("chat"))
    assert 0 < turn.first_token_s <= (turn.first_remark_s or turn.latency_s) <= turn.latency_s


def test_the_stream_shows_checked_pieces_that_make_the_answer(
    beauty_shop: Shop, server: LocalServer, roomy: LLMSettings
) -> None:
    async def stream(chat: OpenAIChat) -> list[str | Turn]:
        pieces = chat_stream("Shampoos for dry hair", None, beauty_shop, History.empty(), chat, PROMPTS, FAST)
        return [piece async for piece in pieces]

    *pieces, turn = with_chat(roomy, server.base_url, stream)
    assert isinstance(turn, Turn) and all(isinstance(piece, str) for piece in pieces)
    assert "".join(str(piece) for piece in pieces) == turn.answer
    assert all(f"— {shown.reason}" in str(pieces[0]) for shown in turn.items)  # the items come first, at once
    remark = [piece for piece in pieces[1:] if piece != "\n" + phrase("en", "fallback")]
    assert len(remark) <= REMARK_SENTENCES and (turn.first_remark_s is None) == (not remark)
    assert all(_in_category(beauty_shop, shown.item_id, "Shampoos") for shown in turn.items)


def test_a_timeout_shows_the_ranked_items_and_says_the_wording_is_unavailable(
    beauty_shop: Shop, server: LocalServer, roomy: LLMSettings
) -> None:
    hurried = AssistantOptions(intent=FAST.intent, answer=ChatOptions(max_tokens=160, time_budget_s=0.001))
    turn = with_chat(
        roomy,
        server.base_url,
        lambda chat: chat_turn("Conditioners", None, beauty_shop, History.empty(), chat, PROMPTS, hurried),
    )
    assert turn.fallback is not None and turn.fallback.startswith("LLMTimeout")
    assert turn.answer.startswith(phrase("en", "intro")) and turn.answer.endswith(phrase("en", "fallback"))
    assert [shown.item_id for shown in turn.items] == list(turn.retrieved[: hurried.show])
    assert all(shown.reason in turn.answer for shown in turn.items) and turn.first_remark_s is None
    with pytest.raises(LLMTimeout):  # a product question has no honest answer without the model
        item = beauty_shop.facts(beauty_shop.items.index(turn.retrieved[0]))
        with_chat(roomy, server.base_url, lambda chat: ask(item, "Is it big?", chat, PROMPTS, hurried))


def test_ask_answers_from_the_fields_or_says_not_stated(
    rees46_shop: Shop, server: LocalServer, roomy: LLMSettings
) -> None:
    async def questions(chat: OpenAIChat) -> list:
        asked = ("How much does it cost?", "Is it waterproof?", "这个防水吗？")
        item = rees46_shop.facts(rees46_shop.items.index(SHISEIDO))
        return [await ask(item, question, chat, PROMPTS, FAST) for question in asked]

    price, waterproof, zh = with_chat(roomy, server.base_url, questions)
    assert price.stated and "35.79" in price.text
    assert not waterproof.stated and waterproof.text == phrase("en", "not_stated")
    assert not zh.stated and zh.language == "zh" and "未说明" in zh.text
    assert (price.template, price.version) == ("ask", PROMPTS.version("ask"))


def test_similar_returns_only_candidates_filled_from_the_ranking(
    beauty: Dataset, beauty_shop: Shop, server: LocalServer, roomy: LLMSettings
) -> None:
    row = beauty.sequences.row(USER)
    viewed = beauty_shop.items.ids[int(row[23])]
    found = with_chat(
        roomy,
        server.base_url,
        lambda chat: similar(viewed, History(row[:23]), beauty_shop, chat, PROMPTS, FAST),
    )
    ids = [pick.item_id for pick in found.items]
    assert len(ids) == FAST.similar == len(set(ids)) and set(ids) <= set(found.candidates)
    assert viewed not in ids and found.history_shown == 20 and not found.timed  # Beauty has no timestamps
    chosen = sum(pick.source == "llm" for pick in found.items)
    assert found.counts.filled == FAST.similar - chosen
    assert (found.note is not None) == (chosen < FAST.similar)
    assert [p.item_id for p in found.items if p.source == "ranking"] == [
        c for c in found.candidates if c not in ids[:chosen]
    ][: FAST.similar - chosen]


def test_without_a_backend_every_call_raises_unavailable(beauty_shop: Shop) -> None:
    none = UnavailableChat()
    item = beauty_shop.items.ids[1]
    facts = beauty_shop.facts(1)

    async def stream() -> None:
        async for _ in chat_stream("shampoo", None, beauty_shop, History.empty(), none, PROMPTS):
            pass

    calls = [
        lambda: chat_turn("shampoo", None, beauty_shop, History.empty(), none, PROMPTS),
        stream,
        lambda: ask(facts, "Is it big?", none, PROMPTS),
        lambda: similar(item, History.empty(), beauty_shop, none, PROMPTS),
    ]
    for call in calls:
        with pytest.raises(LLMUnavailable, match="no LLM backend is configured"):
            asyncio.run(call())
