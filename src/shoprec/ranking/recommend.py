"""The composer: one ``Ranker`` runs candidates -> filters -> score -> top-k -> re-rank -> reasons, and the
rankers shoprec answers with (feed, similar items, search) are built here from a model.

``OfflineRanking`` hands a ranker to the evaluation protocol (``evaluation.protocol.Ranking``), so a served feed
and an evaluated feed are the same code path on the same history.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from shoprec.evaluation.protocol import top_k
from shoprec.models.base import Recommender
from shoprec.ranking.explain import Explainer, FeedReasons, Occlusion, SearchReasons, SimilarReasons, occlusion
from shoprec.ranking.items import ItemIndex
from shoprec.ranking.rerank import MMR, Calibration, ExposureFloors, ProviderExposure, TailExposure
from shoprec.ranking.stages import (
    AllItems,
    Available,
    Brand,
    CandidateSource,
    Category,
    Filter,
    ItemSimilarity,
    Personalised,
    PopularityCorrection,
    Price,
    ReRanker,
    Scorer,
    Seen,
    SimilarTo,
    TextMatches,
    TextRelevance,
    model_scorer,
)
from shoprec.ranking.types import Knobs, Ranked, Request
from shoprec.types import PADDING, Sequences

SIMILAR_PERSONAL_WEIGHT = 0.3  # weight of the user's normalised feed score in a personalised similar-items list
SEARCH_PERSONAL_WEIGHT = 0.2  # the same in personalised search
FILTERS: tuple[Filter, ...] = (Available(), Seen(), Category(), Brand(), Price())
ALL_ITEMS = AllItems()


@dataclass(frozen=True)
class Ranker:
    scorer: Scorer
    candidates: CandidateSource = ALL_ITEMS
    filters: tuple[Filter, ...] = FILTERS
    rerankers: tuple[ReRanker, ...] = ()
    explainer: Explainer | None = None

    def rank(self, requests: Sequence[Request], items: ItemIndex) -> list[Ranked]:
        """One ranked list per request, all scored in one call of the scorer (one model forward)."""
        if not requests:
            return []
        masks, notes = zip(*(self.allowed(request, items) for request in requests), strict=True)
        allowed = np.stack(masks)  # (B, N)
        scores = self.scorer.score(requests, items, allowed)
        pools = [max([request.k] + [r.pool(request) for r in self.rerankers]) for request in requests]
        width = min(max(pools), len(items) - 1)
        best = top_k(scores.total, width, allowed=allowed)  # (B, width), PADDING past the allowed ones
        out = []
        for b, request in enumerate(requests):
            chosen = best[b][best[b] != PADDING][: pools[b]]
            said = list(notes[b])
            for reranker in self.rerankers:
                chosen, note = reranker.rerank(request, items, chosen, scores.total[b])
                said += [note] if note is not None else []
            chosen = chosen[: request.k]
            row = scores.row(b)
            reasons = self.explainer.explain(request, items, chosen, row) if self.explainer else ((),) * len(chosen)
            out.append(Ranked(chosen, scores.total[b, chosen], reasons, bool(scores.personal[b]), tuple(said)))
        return out

    def allowed(self, request: Request, items: ItemIndex) -> tuple[np.ndarray, tuple[str, ...]]:
        """(N,) bool: what this ranking may return for ``request`` after candidates and filters, and the filters'
        notes."""
        mask = self.candidates.allowed(request, items)
        notes = tuple([note for stage in self.filters if (note := stage.apply(request, items, mask)) is not None])
        return mask, notes


@dataclass(frozen=True)
class OfflineRanking:
    """A ranker over a fixed item view, as the evaluation protocol ranks: (B, k) item indices per history row,
    PADDING where fewer than ``k`` items are allowed. ``knobs`` are the request's re-ranking knobs (``Request``'s
    field names, e.g. ``{"diversity": 0.5}``), as the API's query parameters set them."""

    ranker: Ranker
    items: ItemIndex
    knobs: Knobs = field(default_factory=Knobs)

    def top(self, histories: Sequences, k: int, exclude_seen: bool) -> np.ndarray:
        requests = [Request(history=row, k=k, exclude_seen=exclude_seen, **self.knobs) for row in histories.rows()]
        ranked = np.full((len(requests), k), PADDING, dtype=np.int64)
        for b, result in enumerate(self.ranker.rank(requests, self.items)):
            ranked[b, : len(result.items)] = result.items
        return ranked


@dataclass(frozen=True)
class Rankers:
    """Everything one model answers with: the feed, similar items, search and the exact explanation."""

    feed: Ranker
    similar: Ranker
    search: Ranker
    window: int | None  # history items the model reads (None: all), the span an explanation covers

    def explain(self, request: Request, items: ItemIndex, target: int) -> tuple[Occlusion, int | None, bool]:
        """Occlusion over the history the model reads, the target's 1-based rank among the items the feed could
        show (None when a filter excludes it), and whether the history is personal at all."""
        allowed, _ = self.feed.allowed(request, items)
        scores = self.feed.scorer.score([request], items, allowed[None])
        row = scores.total[0]
        rank = 1 + int(np.count_nonzero(allowed & (row > row[target]))) if allowed[target] else None
        if not scores.personal[0]:
            return Occlusion(float(row[target]), ()), rank, False
        return occlusion(self.feed.scorer, request, items, target, self.window), rank, True


def feed_ranker(model: Recommender) -> Ranker:
    """The feed: ``model``'s scores, less the popularity the request divides out, then the request's re-ranking
    knobs (each stage a no-op at 0). MMR and calibration are alternatives (the later would undo the earlier); the
    exposure floors run last and together, so the shares they promise hold whatever came before."""
    return Ranker(
        PopularityCorrection(model_scorer(model)),
        rerankers=(Calibration(), MMR(), ExposureFloors((ProviderExposure(), TailExposure()))),
        explainer=FeedReasons(),
    )


def rankers_for(model: Recommender, encode_query: Callable[[str], np.ndarray]) -> Rankers:
    """The feed, similar-items and search rankers of ``model``; search relevance comes from ``encode_query``."""
    feed = model_scorer(model)
    return Rankers(
        feed=feed_ranker(model),
        similar=Ranker(
            Personalised(ItemSimilarity(model), feed, SIMILAR_PERSONAL_WEIGHT),
            candidates=SimilarTo(),
            filters=(Available(), Category(), Brand(), Price()),
            explainer=SimilarReasons(),
        ),
        search=search_ranker(encode_query, feed),
        window=model.history_window,
    )


def search_ranker(encode_query: Callable[[str], np.ndarray], feed: Scorer | None = None) -> Ranker:
    """Search: text relevance over the items with text, within the query's categories, brands and prices, blended with
    the user's ``feed`` score when a history shapes it. Without ``feed`` it ranks anonymous queries exactly as the
    served search does, so it can be measured on a catalog with no trained model."""
    relevance = TextRelevance(encode_query)
    return Ranker(
        relevance if feed is None else Personalised(relevance, feed, SEARCH_PERSONAL_WEIGHT, rescale_base=True),
        candidates=TextMatches(),
        filters=(Available(), Category(), Brand(), Price()),
        explainer=SearchReasons(),
    )
