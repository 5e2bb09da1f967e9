"""The shopping assistant's chat turn: read the message (or refine the previous turn's intent for a follow-up),
put its words into the catalog's language when they are in the other one, retrieve and rank through the search
ranker within the intent's constraints (blended with the user's feed), show the top items with the ranking's
reasons at once, then the model's short remark on them, checked sentence by sentence (``answer.py``).

Everything a call reads comes in as arguments (serving and the command line pass them): the chat backend, the
prompts, one catalog snapshot with its rankers (``Shop``) and the user's history. Without a backend every call
raises ``LLMUnavailable``; when the model times out or writes nothing usable, the items stand and the turn says
that the assistant's remark is unavailable.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoprec.llm.answer import REMARK_SENTENCES, AnswerWriter, Counts, Retrieved, Shown, language_of
from shoprec.llm.backends import ChatBackend, ChatOptions, Message, UnavailableChat
from shoprec.llm.errors import LLMBadOutput, LLMTimeout, LLMUnavailable
from shoprec.llm.grounding import ClaimChecker, complete_sentences, item_evidence, words
from shoprec.llm.intent import Intent, Language, detect_language, parse, refine
from shoprec.llm.prices import parse_prices
from shoprec.llm.prompts import Prompts, Rendered
from shoprec.llm.prompts.build import catalog_item_facts
from shoprec.llm.prompts.context import ChatContext, HistoryWindow, ItemFacts
from shoprec.llm.rewrite import REWRITE_OPTIONS, RewriteCache, rewrite
from shoprec.llm.terms import CatalogTerms
from shoprec.llm.understand import INTENT_OPTIONS, understand
from shoprec.llm.wording import reason_line
from shoprec.ranking.items import ItemIndex
from shoprec.ranking.recommend import Rankers
from shoprec.ranking.types import Ranked, Request

LANGUAGE_SAMPLE = 1000  # titles read to tell a catalog's language


@dataclass(frozen=True)
class Shop:
    """One consistent catalog snapshot, the rankers that rank over it, the catalog's names for query rules and the
    language its titles are written in (a query in the other one is rewritten into it before retrieval)."""

    items: ItemIndex
    rankers: Rankers
    terms: CatalogTerms
    language: Language = "en"

    @classmethod
    def of(cls, items: ItemIndex, rankers: Rankers) -> Shop:
        titles = (record.title for record in items.items if record is not None and record.title)
        return cls(items, rankers, CatalogTerms.of_items(items), catalog_language(titles))

    def facts(self, index: int) -> ItemFacts:
        """Item ``index``'s catalog fields as a prompt shows them (only its id when the catalog has no record)."""
        record = self.items.items[index]
        return catalog_item_facts(record) if record is not None else ItemFacts(self.items.ids[index])


@dataclass(frozen=True)
class History:
    """The user's history, oldest first: item indices, with timestamps (unix seconds) and event types where the
    data has them."""

    items: np.ndarray  # (L,) int64
    timestamps: np.ndarray | None = None  # (L,) float64
    events: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for name, values in (("timestamps", self.timestamps), ("events", self.events)):
            if values is not None and len(values) != len(self.items):
                raise ValueError(f"{len(values)} {name} for a history of {len(self.items)} items")

    @classmethod
    def empty(cls) -> History:
        return cls(np.zeros(0, dtype=np.int64))


def catalog_language(titles: Iterable[str]) -> Language:
    """The language most of a catalog's titles (the first thousand) are written in; English without titles."""
    sample = list(itertools.islice(titles, LANGUAGE_SAMPLE))
    chinese = sum(detect_language(title) == "zh" for title in sample)
    return "zh" if 2 * chinese > len(sample) else "en"


ANSWER_OPTIONS = ChatOptions(max_tokens=80, temperature=0.0, seed=0)  # two short sentences; the budget is the backend's
WINDOW = HistoryWindow()


@dataclass(frozen=True)
class AssistantOptions:
    """``llm_intent``: also read a first message with the LLM (``understand``). Off: on the labelled intent set the
    merged reading was no better than the rules' and the call costs seconds before retrieval (docs/llm.md)."""

    llm_intent: bool = False
    retrieve: int = 8  # items the ranking retrieves for a chat turn (put in price order when asked for one)
    show: int = 3  # of those, the items a chat turn shows (and the model remarks on)
    candidates: int = 10  # similar items the ranking proposes to the model
    similar: int = 5  # similar items shown
    intent: ChatOptions = INTENT_OPTIONS
    rewrite: ChatOptions = REWRITE_OPTIONS
    answer: ChatOptions = ANSWER_OPTIONS
    window: HistoryWindow = WINDOW  # the history the similar prompt shows


DEFAULT_OPTIONS = AssistantOptions()


@dataclass(frozen=True)
class Turn:
    """One answered message. ``query`` is the text the search ranker matched; ``retrieved`` the ids it returned
    (``items`` shows the first of them); ``fallback`` says why the model's remark is missing, when it is."""

    message: str
    intent: Intent
    query: str
    items: tuple[Shown, ...]
    retrieved: tuple[str, ...]
    answer: str
    language: Language
    template: str
    version: int
    counts: Counts
    latency_s: float
    first_token_s: float  # until the first text piece (the items, with the ranking's reasons) was ready
    first_remark_s: float | None  # until the model's first checked sentence was ready (None: none was shown)
    model_language: Language | None  # of the model's remark, as written (None: it wrote none)
    fallback: str | None = None
    notes: tuple[str, ...] = ()  # what the ranking could not apply, as it said it

    @property
    def answer_language(self) -> Language | None:
        """The language of the answer's own words, the items' titles and reasons' names set aside."""
        return language_of(self.answer, words(" ".join(f"{s.title or ''} {s.reason}" for s in self.items)))


@dataclass(frozen=True)
class FollowUp:
    """What the next message of a conversation refines: a turn's intent, its search text and the items it showed.
    Small and JSON-able, so a server keeps it per session between requests."""

    intent: Intent
    query: str
    shown: tuple[str, ...]

    @classmethod
    def of(cls, turn: Turn) -> FollowUp:
        return cls(turn.intent, turn.query, tuple(shown.item_id for shown in turn.items))

    def to_json(self) -> dict[str, object]:
        return {"intent": self.intent.model_dump(mode="json"), "query": self.query, "shown": list(self.shown)}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> FollowUp:
        return cls(Intent.model_validate(value["intent"]), str(value["query"]), tuple(map(str, value["shown"])))


def require(llm: ChatBackend) -> None:
    """Refuse at once without a backend, before any ranking work."""
    if isinstance(llm, UnavailableChat):
        raise LLMUnavailable(llm.reason)


def messages_of(rendered: Rendered) -> list[Message]:
    return [Message(role=m["role"], content=m["content"]) for m in rendered.messages]


async def chat_turn(
    message: str,
    previous: Turn | FollowUp | None,
    shop: Shop,
    history: History,
    llm: ChatBackend,
    prompts: Prompts,
    options: AssistantOptions = DEFAULT_OPTIONS,
    rewrites: RewriteCache | None = None,
) -> Turn:
    """One turn, whole (``chat_stream`` without the pieces)."""
    async for piece in chat_stream(message, previous, shop, history, llm, prompts, options, rewrites):
        if isinstance(piece, Turn):
            return piece
    raise AssertionError("chat_stream ends with its turn")


async def chat_stream(
    message: str,
    previous: Turn | FollowUp | None,
    shop: Shop,
    history: History,
    llm: ChatBackend,
    prompts: Prompts,
    options: AssistantOptions = DEFAULT_OPTIONS,
    rewrites: RewriteCache | None = None,
) -> AsyncIterator[str | Turn]:
    """Text pieces of the answer as each passes the checks (for server-sent events), then the ``Turn``.

    ``previous``: the turn before in this conversation, whose intent a follow-up refines ("cheaper", "换个牌子");
    ``rewrites``: the cache of query rewrites (a message in another language than the catalog's is searched in the
    catalog's, as search does).
    """
    started = time.perf_counter()
    require(llm)
    if not message.strip():
        raise ValueError("the message is empty")
    follow_up = FollowUp.of(previous) if isinstance(previous, Turn) else previous
    intent, query = await _intent(message, follow_up, shop, llm, prompts, options, rewrites)
    retrieval = await asyncio.to_thread(retrieve, intent, query, shop, history, options)
    writer = answer_writer(message, retrieval, shop, history, options)
    yield writer.listing()
    first_token_s = time.perf_counter() - started
    rendered = prompts.render(
        ChatContext(message, intent.language, intent, tuple(entry.facts for entry in writer.items), retrieval.notes)
    )
    first_remark_s: float | None = None
    fallback: str | None = None
    if writer.items:  # nothing to remark on otherwise: the listing said that nothing matched
        try:
            async for piece in _remark(writer, rendered, llm, options.answer):
                first_remark_s = first_remark_s or time.perf_counter() - started
                yield piece
        except (LLMTimeout, LLMBadOutput) as error:
            fallback = f"{type(error).__name__}: {error}"
            yield writer.fallback()
    yield Turn(
        message=message,
        intent=intent,
        query=query,
        items=tuple(writer.shown),
        retrieved=tuple(r.facts.item_id for r in retrieval.items),
        answer=writer.answer,
        language=intent.language,
        template=rendered.name,
        version=rendered.version,
        counts=writer.counts,
        latency_s=time.perf_counter() - started,
        first_token_s=first_token_s,
        first_remark_s=first_remark_s,
        model_language=writer.model_language,
        fallback=fallback,
        notes=retrieval.notes,
    )


async def _remark(
    writer: AnswerWriter, rendered: Rendered, llm: ChatBackend, options: ChatOptions
) -> AsyncIterator[str]:
    """The model's remark, streamed; each sentence is checked as soon as it is complete, and reading stops after
    ``REMARK_SENTENCES`` (leaving the stream cancels the rest of the generation)."""
    text = ""
    async with llm.stream(messages_of(rendered), options) as stream:
        async for delta in stream:
            done, text = complete_sentences(text + delta)
            for sentence in done:
                if (piece := writer.remark(sentence)) is not None:
                    yield piece
                if len(writer.read) >= REMARK_SENTENCES:
                    return
    ended = text.strip() and stream.result.finish_reason == "stop"  # a last sentence without an end mark
    if ended and (piece := writer.remark(text.strip())) is not None:
        yield piece


async def _intent(
    message: str,
    previous: FollowUp | None,
    shop: Shop,
    llm: ChatBackend,
    prompts: Prompts,
    options: AssistantOptions,
    rewrites: RewriteCache | None,
) -> tuple[Intent, str]:
    """The turn's intent and search text. A first message is read by the rules (and the model with
    ``llm_intent``); a follow-up refines the previous intent by rules and keeps the previous search text unless it
    names another product type. New search text in another language than the catalog's is rewritten into it."""
    if previous is None:
        if options.llm_intent:
            intent = (await understand(message, shop.terms, llm, prompts, options.intent)).intent
        else:
            intent = parse(message, shop.terms)
        return intent, await _search_text(message, shop, llm, prompts, options, rewrites)
    indices = [shop.items.positions[item] for item in previous.shown if item in shop.items.positions]
    brands = [brand for i in indices if (record := shop.items.items[i]) is not None and (brand := record.brand)]
    prices = [price for i in indices if (price := shop.items.price(i)) is not None]
    intent = refine(previous.intent, message, shop.terms, brands, prices)
    if parse(message, shop.terms).category is None:
        return intent, previous.query
    return intent, await _search_text(message, shop, llm, prompts, options, rewrites)


async def _search_text(
    message: str,
    shop: Shop,
    llm: ChatBackend,
    prompts: Prompts,
    options: AssistantOptions,
    rewrites: RewriteCache | None,
) -> str:
    """The message without its price words, in the catalog's language when the LLM rewrites it in time (as
    written otherwise: ``rewrite`` never fails)."""
    text = parse_prices(message).text
    return (await rewrite(text, llm, prompts, rewrites, target=shop.language, options=options.rewrite)).text


@dataclass(frozen=True)
class Retrieval:
    """What the ranking retrieved for a turn's intent, best first (or in the price order the intent asks for)."""

    intent: Intent
    query: str
    items: tuple[Retrieved, ...]
    notes: tuple[str, ...]  # what the ranking could not apply


def retrieve(intent: Intent, query: str, shop: Shop, history: History, options: AssistantOptions) -> Retrieval:
    """The search ranker within the intent's constraints, blended with the user's feed (blocking: CPU work)."""
    ranked = shop.rankers.search.rank([_request(intent, query, history, shop, options.retrieve)], shop.items)[0]
    return Retrieval(intent, query, tuple(_retrieved(shop, ranked, intent)), ranked.notes)


def answer_writer(
    message: str, retrieval: Retrieval, shop: Shop, history: History, options: AssistantOptions
) -> AnswerWriter:
    """The writer of a turn's answer: it shows the first ``show`` retrieved items and checks the model's remark on
    them. Product terms are those of every retrieved item, the user's recent history (a borrowed ingredient is the
    failure to catch), the message and the catalog's names."""
    recent = history.items[-options.window.count :].tolist()
    checker = ClaimChecker.of(
        [*(_texts(r.facts) for r in retrieval.items), *(shop.items.title(int(i)) for i in recent), message],
        [*shop.terms.brands, *shop.terms.categories],
    )
    return AnswerWriter(retrieval.intent, retrieval.items[: options.show], checker, retrieval.notes, message)


def _request(intent: Intent, query: str, history: History, shop: Shop, k: int) -> Request:
    """The search request: the intent's catalog names become filters; a wanted name the catalog does not have (a
    model's own wording) only adds to the text to match, and ruling out a name it does not have rules out nothing."""
    categories = {name.lower() for name in shop.terms.categories}
    brands = {name.lower() for name in shop.terms.brands}
    category = intent.category if intent.category and intent.category.lower() in categories else None
    brand = intent.brand if intent.brand and intent.brand.lower() in brands else None
    words = [query, *(name for name in (intent.category, intent.brand) if name and name not in (category, brand))]
    return Request(
        history=history.items,
        k=k,
        exclude_seen=False,
        categories=(category,) if category else (),
        exclude_categories=tuple(name for name in intent.exclude_categories if name.lower() in categories),
        brands=(brand,) if brand else (),
        exclude_brands=tuple(name for name in intent.exclude_brands if name.lower() in brands),
        min_price=intent.min_price,
        max_price=intent.max_price,
        query=" ".join(w for w in words if w.strip()).strip() or None,
    )


def _retrieved(shop: Shop, ranked: Ranked, intent: Intent) -> list[Retrieved]:
    """The ranked items with their facts and reasons; in price order when the intent asks for one (unknown prices
    last)."""
    out = [
        Retrieved(
            index=index,
            facts=(facts := shop.facts(index)),
            reasons=reasons,
            reason=reason_line(shop.items, index, reasons, intent, intent.language),
            evidence=item_evidence(facts),
        )
        for index, reasons in zip(ranked.items.tolist(), ranked.reasons, strict=True)
    ]
    if intent.sort is not None:
        sign = 1.0 if intent.sort == "price_asc" else -1.0
        out.sort(key=lambda r: (r.facts.price is None, sign * (r.facts.price or 0.0)))
    return out


def _texts(facts: ItemFacts) -> str:
    return " ".join(text for text in (facts.title, facts.category, facts.brand, facts.description) if text)
