"""Reasons: what each ranked item owes its place to, claiming only what was computed.

The list explainers (feed, similar, search) run on every answer and must be cheap: one matrix product per list.
``occlusion`` is the exact explanation of one item: the score drop when each history item the model reads is
left out, all variants scored in one batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from shoprec.ranking.items import ItemIndex
from shoprec.ranking.stages import Scorer
from shoprec.ranking.types import Reason, Request, Scores

EXPLAINING_ITEMS = 10  # most recent distinct history items that may explain a feed item
REASONS_KEPT = 3  # of those, the most similar ones shown
MODEL_SPACE = "similar in the model's item space"
TEXT_SPACE = "similar by item text (the model has no item vectors)"
PERSONAL = "fit to the user's history (normalised feed score)"
_STOPWORDS = frozenset({"a", "an", "and", "the", "for", "with", "of", "in", "on", "to", "or", "my"})
_WORD = re.compile(r"\w+")
_TINY = float(np.finfo(np.float32).tiny)  # floor of a share's denominator

ItemReasons = tuple[tuple[Reason, ...], ...]  # one tuple of reasons per ranked item


class Explainer(Protocol):
    def explain(self, request: Request, items: ItemIndex, top: np.ndarray, scores: Scores) -> ItemReasons:
        """Reasons for each item of ``top``; ``scores`` is the request's own row (B = 1)."""
        ...


def popular(share: float = 1.0) -> Reason:
    return Reason(kind="popular", share=share, detail="popular in the training data")


def attribute(detail: str) -> Reason:
    """A catalog attribute the item met. Attributes filter rather than score, so they hold no share."""
    return Reason(kind="attribute", share=0.0, detail=detail)


def recent_distinct(history: np.ndarray, n: int | None) -> np.ndarray:
    """The ``n`` most recent distinct items of a history (all of them when ``n`` is None), newest first."""
    return np.array(list(dict.fromkeys(history[::-1].tolist()))[:n], dtype=np.int64)


class FeedReasons:
    """For each item, the recent history items nearest to it in the model's item space (in the text space for a
    model without item vectors), shares proportional to the positive cosine; a list that is not personal is popular.
    """

    def explain(self, request: Request, items: ItemIndex, top: np.ndarray, scores: Scores) -> ItemReasons:
        if not scores.personal[0]:
            return tuple((popular(),) for _ in top)
        space, detail = (items.unit_table, MODEL_SPACE) if items.unit_table is not None else (items.search, TEXT_SPACE)
        recent = recent_distinct(request.history, EXPLAINING_ITEMS)
        similarity = np.maximum(space[top] @ space[recent].T, 0.0)  # (k, h)
        order = (-similarity).argsort(axis=1, kind="stable")[:, :REASONS_KEPT]  # (k, kept)
        kept = similarity[np.arange(len(top))[:, None], order]
        shares = kept / np.maximum(kept.sum(axis=1, keepdims=True), _TINY)
        out = []
        sources = recent.tolist()
        for columns, row_shares in zip(order.tolist(), shares.tolist(), strict=True):
            pairs = zip(columns, row_shares, strict=True)
            reasons = tuple([Reason("history", share, sources[j], detail) for j, share in pairs if share > 0])
            # nothing in the history points at it on its own: the history as a whole does
            out.append(reasons or (Reason(kind="history", share=1.0, detail="the user's history as a whole"),))
        return tuple(out)


def _shares(primary: float, personal: float) -> tuple[float, float]:
    """Shares of a score made of a primary part and a personal part; a negative part counts as nothing."""
    primary, personal = max(float(primary), 0.0), max(float(personal), 0.0)
    total = primary + personal
    return (1.0, 0.0) if total <= 0 else (primary / total, personal / total)


def _personal_reason(share: float) -> tuple[Reason, ...]:
    return (Reason(kind="history", share=share, detail=PERSONAL),) if share > 0 else ()


class SimilarReasons:
    """The seed item (model-space and text similarity), a shared category, and the user's part when personal."""

    def explain(self, request: Request, items: ItemIndex, top: np.ndarray, scores: Scores) -> ItemReasons:
        seed = request.seed
        assert seed is not None
        personal = scores.parts.get("personal")
        seed_code = items.category_codes[seed]
        out = []
        for i in top.tolist():
            similar, mine = _shares(scores.parts["similar"][0, i], 0.0 if personal is None else personal[0, i])
            reasons = [Reason(kind="similar", share=similar, item=seed, detail="model-space and text similarity")]
            if seed_code >= 0 and items.category_codes[i] == seed_code:
                reasons.append(attribute(f"same category: {items.category(seed)}"))
            out.append((*reasons, *_personal_reason(mine)))
        return tuple(out)


class SearchReasons:
    """The query words found in the item's title or category share the text part (the whole query when none is
    found literally: a paraphrase, another language); the user's part; then the constraints the item met."""

    def explain(self, request: Request, items: ItemIndex, top: np.ndarray, scores: Scores) -> ItemReasons:
        text = request.query or ""
        words = [word for word in dict.fromkeys(_WORD.findall(text.lower())) if word not in _STOPWORDS]
        personal = scores.parts.get("personal")
        out = []
        for i in top.tolist():
            share, mine = _shares(scores.parts["query"][0, i], 0.0 if personal is None else personal[0, i])
            out.append(
                (*_query_reasons(items, i, text, words, share), *_personal_reason(mine), *_met(request, items, i))
            )
        return tuple(out)


def _query_reasons(items: ItemIndex, i: int, text: str, words: Sequence[str], share: float) -> tuple[Reason, ...]:
    if not text:
        return (popular(share),)
    shown = set(_WORD.findall(f"{items.title(i) or ''} {items.category(i) or ''}".lower()))
    matched = [word for word in words if word in shown]
    if not matched:
        return (Reason(kind="query", share=share, detail=text),)
    return tuple(Reason(kind="query", share=share / len(matched), detail=word) for word in matched)


def _met(request: Request, items: ItemIndex, i: int) -> tuple[Reason, ...]:
    reasons = []
    price = items.price(i)
    if price is not None and (request.min_price is not None or request.max_price is not None):
        low = "" if request.min_price is None else f"{request.min_price:g} <= "
        high = "" if request.max_price is None else f" <= {request.max_price:g}"
        reasons.append(attribute(f"price {low}{price:g}{high}"))
    code = items.category_codes[i]
    if code >= 0:
        reasons += [attribute(f"category: {name}") for name in request.categories if name.lower() in items.paths[code]]
    return tuple(reasons)


@dataclass(frozen=True)
class Occlusion:
    """The target's score, and for each distinct item among the history items the model reads (its last
    ``window`` items; None = the whole history) the drop when every occurrence of it is left out of the history.
    """

    score: float
    reasons: tuple[Reason, ...]  # largest drop first; items whose removal changes nothing are left out


def occlusion(scorer: Scorer, request: Request, items: ItemIndex, target: int, window: int | None) -> Occlusion:
    history = request.history
    read = recent_distinct(history if window is None else history[-window:], None)
    variants = [Request(history=history[history != h], k=request.k) for h in read.tolist()]
    everything = np.ones((1 + len(variants), len(items)), dtype=bool)
    scores = scorer.score([request, *variants], items, everything).total[:, target]
    score = float(scores[0])
    drops = score - scores[1:]  # (len(read),)
    positive = float(drops[drops > 0].sum())
    scale = positive if positive > 0 else float(np.abs(drops).sum()) or 1.0
    reasons = tuple(
        Reason(
            kind="history",
            share=float(drops[j] / scale),
            item=int(read[j]),
            detail=f"score {score:.4f} -> {score - drops[j]:.4f} without it",
        )
        for j in np.argsort(-drops, kind="stable")
        if drops[j] != 0
    )
    return Occlusion(score, reasons)
