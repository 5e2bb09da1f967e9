"""Assistant calls about one item: a shopper's question answered from the item's catalog fields only (``ask``), and
similar items chosen by the model from the similar-items ranker's candidates (``similar``).

Both decode under a JSON schema (the similar ids are an enum of the candidates) and check what comes back as the
chat turn does (``grounding``): an answer the fields do not support becomes "not stated"; a reason the candidate's
fields do not support is replaced by the ranking's reason.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal

from shoprec.llm.answer import language_of
from shoprec.llm.assistant import DEFAULT_OPTIONS, AssistantOptions, History, Shop, messages_of, require
from shoprec.llm.backends import ChatBackend
from shoprec.llm.errors import LLMBadOutput, LLMTimeout
from shoprec.llm.grounding import ClaimChecker, Evidence, item_evidence, numbers, words
from shoprec.llm.intent import Intent, Language, detect_language
from shoprec.llm.prompts import Prompts
from shoprec.llm.prompts.build import preferences, recent
from shoprec.llm.prompts.context import AskContext, HistoryEvent, ItemFacts, SimilarContext
from shoprec.llm.wording import phrase, reason_line
from shoprec.ranking.types import Reason, Request

ANSWER_CHARS = 200
# Words that ask which field ("how much does it cost", "what brand"): the rest of a question's words are what an
# answer may claim only when the fields hold them ("is it waterproof?").
QUESTION_WORDS = words("how much many does cost price priced brand made make maker kind type category what which who")
REASON_CHARS = 120
ASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"stated": {"type": "boolean"}, "answer": {"type": "string", "maxLength": ANSWER_CHARS}},
    "required": ["stated", "answer"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Answer:
    """``text`` is what the shopper sees: the model's answer when the fields support it, else "not stated" in the
    asker's language. ``model_text`` is what the model wrote."""

    item_id: str
    question: str
    text: str
    stated: bool
    language: Language
    model_text: str
    unsupported_claims: int  # sentences of the model's answer the fields do not support
    template: str
    version: int
    latency_s: float


async def ask(
    item: ItemFacts,
    question: str,
    llm: ChatBackend,
    prompts: Prompts,
    options: AssistantOptions = DEFAULT_OPTIONS,
) -> Answer:
    """Answer ``question`` about ``item`` from its catalog fields. "Not stated" unless the model says the fields
    state it AND its answer holds something of the fields (a word or a number) and nothing they lack, the words of
    the question included: a bare "yes" to "is it waterproof?" is not stated, nor "it is waterproof". A model that
    times out or writes no answer raises: without one there is no honest answer."""
    started = time.perf_counter()
    require(llm)
    if not question.strip():
        raise ValueError("the question is empty")
    facts, item_id = item, item.item_id
    language = detect_language(question)
    rendered = prompts.render(AskContext(facts, question, language))
    value = (await llm.chat_json(messages_of(rendered), ASK_SCHEMA, options.answer)).value
    said = str(value.get("answer", "")) if isinstance(value, dict) else ""
    support = item_evidence(facts)
    checked = ClaimChecker(words(question) - QUESTION_WORDS).check(said, support, [item_id])
    unsupported = len(checked.unsupported) + len(checked.dropped_ids)
    grounded = bool(words(checked.text) & support.words or numbers(checked.text) & support.numbers)
    stated = bool(isinstance(value, dict) and value.get("stated") is True and grounded and not unsupported)
    return Answer(
        item_id=item_id,
        question=question,
        text=checked.text if stated else phrase(language, "not_stated"),
        stated=stated,
        language=language,
        model_text=said,
        unsupported_claims=unsupported,
        template=rendered.name,
        version=rendered.version,
        latency_s=time.perf_counter() - started,
    )


@dataclass
class PickCounts:
    """What the checks took out of the model's picks, and what the ranking filled in."""

    dropped_ids: int = 0  # picks outside the candidates
    repeated: int = 0  # picks of an item already picked, or past the number wanted
    unsupported_claims: int = 0  # reasons dropped for a claim the item's fields do not support
    wrong_language: int = 0  # reasons not in English, dropped
    filled: int = 0  # items filled in from the ranking's order after the model's picks


@dataclass(frozen=True)
class Pick:
    item_id: str
    title: str | None
    price: float | None
    reason: str  # the model's reason when its fields support it, else the ranking's
    source: Literal["llm", "ranking"]  # chosen by the model, or filled in from the ranking's order


@dataclass(frozen=True)
class Similar:
    """Items like ``item_id``: the model's choices among ``candidates`` (the ranking's, best first), filled up from
    the ranking's order when it chose fewer (``note`` says so)."""

    item_id: str
    items: tuple[Pick, ...]
    candidates: tuple[str, ...]
    note: str | None
    counts: PickCounts
    history_shown: int  # events of the history the prompt showed
    timed: bool  # the history window was cut by time (the history has timestamps), else by count
    template: str
    version: int
    latency_s: float
    fallback: str | None = None  # why the model's choice is missing, when it is


async def similar(
    item_id: str,
    history: History,
    shop: Shop,
    llm: ChatBackend,
    prompts: Prompts,
    options: AssistantOptions = DEFAULT_OPTIONS,
    now: float | None = None,
) -> Similar:
    """``options.similar`` items like ``item_id`` for the user of ``history``. The prompt's history window ends
    at ``now`` (unix seconds; default: the history's newest timestamp, as offline data has no "now")."""
    started = time.perf_counter()
    require(llm)
    seed = shop.items.index(item_id)
    request = Request(history=history.items, k=options.candidates, exclude_seen=False, seed=seed)
    ranked = await asyncio.to_thread(lambda: shop.rankers.similar.rank([request], shop.items)[0])
    candidates = [int(i) for i in ranked.items]
    reasons = dict(zip(candidates, ranked.reasons, strict=True))
    k = min(options.similar, len(candidates))
    events = _events(shop, history)
    stamps = history.timestamps
    until = now if now is not None else float(stamps.max()) if stamps is not None and len(stamps) else None
    shown_history = recent(events, until, options.window)
    counts = PickCounts()
    if not k:
        nothing = "the similar-items ranking found no candidate"
        return Similar(item_id, (), (), nothing, counts, len(shown_history), until is not None, "similar",
                       prompts.version("similar"), time.perf_counter() - started)  # fmt: skip
    context = SimilarContext(
        viewed=shop.facts(seed),
        history=shown_history,
        window=options.window,
        timed=until is not None,
        preferences=preferences(shown_history),
        candidates=tuple(shop.facts(i) for i in candidates),
        k=k,
    )
    rendered = prompts.render(context)
    picks: list[Pick] = []
    fallback = None
    try:
        answer = await llm.chat_json(messages_of(rendered), _similar_schema(rendered.allowed, k), options.answer)
        picks = _checked_picks(answer.value, shop, reasons, k, counts, context)
    except (LLMTimeout, LLMBadOutput) as error:
        fallback = f"{type(error).__name__}: {error}"
    chosen = len(picks)
    for index in candidates:
        if len(picks) >= k:
            break
        if shop.items.ids[index] not in {pick.item_id for pick in picks}:
            facts = shop.facts(index)
            line = reason_line(shop.items, index, reasons[index], Intent(), "en")
            picks.append(Pick(facts.item_id, facts.title, facts.price, line, "ranking"))
            counts.filled += 1
    note = phrase("en", "similar_filled", chosen=chosen, k=k, filled=counts.filled) if counts.filled else None
    return Similar(
        item_id=item_id,
        items=tuple(picks),
        candidates=tuple(shop.items.ids[i] for i in candidates),
        note=note,
        counts=counts,
        history_shown=len(shown_history),
        timed=context.timed,
        template=rendered.name,
        version=rendered.version,
        latency_s=time.perf_counter() - started,
        fallback=fallback,
    )


def _similar_schema(ids: tuple[str, ...], k: int) -> dict[str, Any]:
    pick = {
        "type": "object",
        "properties": {"id": {"enum": list(ids)}, "reason": {"type": "string", "maxLength": REASON_CHARS}},
        "required": ["id", "reason"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"picks": {"type": "array", "items": pick, "maxItems": k}},
        "required": ["picks"],
        "additionalProperties": False,
    }


def _checked_picks(
    value: Any, shop: Shop, reasons: dict[int, tuple[Reason, ...]], k: int, counts: PickCounts, context: SimilarContext
) -> list[Pick]:
    """The model's picks that name a candidate, once each, at most ``k``. A reason may state the candidate's
    fields, the viewed item's category and the preferences the prompt named (categories, brands); one that states
    more (or is not in English, the prompt's language) is replaced by the ranking's."""
    allowed = {shop.items.ids[i]: i for i in reasons}
    stated = Evidence.of(
        context.viewed.category,
        *(name for name, _ in context.preferences.categories),
        *(name for name, _ in context.preferences.brands),
    )
    products = [
        context.viewed.title,
        *(e.item.title for e in context.history),
        *(c.title for c in context.candidates),
        *(c.category for c in context.candidates),
    ]
    checker = ClaimChecker.of(products, [*shop.terms.brands, *shop.terms.categories])
    picks: list[Pick] = []
    raw = value.get("picks") if isinstance(value, dict) else None
    for pick in raw if isinstance(raw, list) else []:
        item_id = str(pick.get("id")) if isinstance(pick, dict) else ""
        if item_id not in allowed:
            counts.dropped_ids += 1
            continue
        if item_id in {p.item_id for p in picks} or len(picks) >= k:
            counts.repeated += 1
            continue
        facts = shop.facts(allowed[item_id])
        support = item_evidence(facts) | stated
        checked = checker.check(str(pick.get("reason", "")), support, [item_id])
        counts.dropped_ids += len(checked.dropped_ids)
        counts.unsupported_claims += len(checked.unsupported)
        reason = checked.text
        if reason and language_of(reason, support.words) not in (None, "en"):
            counts.wrong_language += 1
            reason = ""
        if not reason:
            reason = reason_line(shop.items, allowed[item_id], reasons[allowed[item_id]], Intent(), "en")
        picks.append(Pick(item_id, facts.title, facts.price, reason, "llm"))
    return picks


def _events(shop: Shop, history: History) -> list[HistoryEvent]:
    return [
        HistoryEvent(
            shop.facts(int(index)),
            None if history.timestamps is None else float(history.timestamps[j]),
            None if history.events is None else history.events[j],
        )
        for j, index in enumerate(history.items.tolist())
    ]
