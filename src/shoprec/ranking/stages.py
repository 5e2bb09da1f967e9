"""The stage roles of a ranking and the stages shoprec ships: candidate sources, filters, scorers, re-rankers.

A stage is a small object with one method; ``Ranker`` (``ranking.recommend``) runs them in order. Filters and
candidate sources narrow an (N,) bool mask of allowed items per request; scorers score a whole batch of requests
at once (one model forward for a micro-batch of feeds); re-rankers reorder a pool of the best allowed items.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from shoprec.models.base import EmbeddingModel, Recommender
from shoprec.ranking.items import ItemIndex
from shoprec.ranking.types import Request, Scores
from shoprec.types import Sequences

PRICE_NOT_APPLIED = "no item here has a price, so the price bound was not applied"
BRAND_NOT_APPLIED = "no item here has a brand, so the brand filter was not applied"

# ---- roles ----------------------------------------------------------------------------------------------------


class CandidateSource(Protocol):
    def allowed(self, request: Request, items: ItemIndex) -> np.ndarray:
        """(N,) bool: the items this ranking may return at all, a fresh array the filters narrow in place."""
        ...


class Filter(Protocol):
    def apply(self, request: Request, items: ItemIndex, allowed: np.ndarray) -> str | None:
        """Narrow ``allowed`` in place; return a note for the caller when the filter could not do its job."""
        ...


class Scorer(Protocol):
    def score(self, requests: Sequence[Request], items: ItemIndex, allowed: np.ndarray) -> Scores:
        """Scores of every item for each request; ``allowed`` is (B, N) after candidates and filters."""
        ...


class ReRanker(Protocol):
    def pool(self, request: Request) -> int:
        """How many of the best allowed items it needs to choose ``request.k`` from."""
        ...

    def rerank(
        self, request: Request, items: ItemIndex, pool: np.ndarray, scores: np.ndarray
    ) -> tuple[np.ndarray, str | None]:
        """``pool`` (best first) reordered, and a note for the caller when the stage could not do its job (the pool
        then comes back as it was); ``scores`` is the (N,) total of the request's row."""
        ...


# ---- candidate sources ----------------------------------------------------------------------------------------


class AllItems:
    """Every real item (the feed and search rank the whole catalog)."""

    def allowed(self, request: Request, items: ItemIndex) -> np.ndarray:
        return items.real()


class SimilarTo:
    """Every item but the one the list starts from."""

    def allowed(self, request: Request, items: ItemIndex) -> np.ndarray:
        if request.seed is None:
            raise ValueError("a similar-items ranking needs the request's seed item")
        mask = items.real()
        mask[request.seed] = False
        return mask


class TextMatches:
    """For a query with text, the items that have text to match (an item with no text vector cannot be relevant
    to words); a query that is nothing but constraints ranks every item."""

    def allowed(self, request: Request, items: ItemIndex) -> np.ndarray:
        mask = items.real()
        if request.query:
            mask &= items.search.any(axis=1)
        return mask


# ---- filters --------------------------------------------------------------------------------------------------


class Available:
    """Items the catalog marks unavailable (out of stock, delisted) are never shown."""

    def apply(self, request: Request, items: ItemIndex, allowed: np.ndarray) -> str | None:
        allowed &= items.available
        return None


class Seen:
    """The user's whole history, however long, when the request excludes seen items (as offline evaluation does)."""

    def apply(self, request: Request, items: ItemIndex, allowed: np.ndarray) -> str | None:
        if request.exclude_seen and len(request.history):
            allowed[request.history] = False
        return None


class Category:
    """Items at or under a category level (any level of the path, any case); a search's stated categories too;
    none under a ruled-out one."""

    def apply(self, request: Request, items: ItemIndex, allowed: np.ndarray) -> str | None:
        if request.category:
            allowed &= items.in_categories([request.category])
        if request.categories:
            allowed &= items.in_categories(request.categories)
        if request.exclude_categories:
            allowed &= ~items.in_categories(request.exclude_categories)
        return None


class Brand:
    """Brands asked for and ruled out (any case). A catalog whose candidates carry no brand at all cannot apply
    either: the list is left as it is and a note says so, as ``Price`` does for prices."""

    def apply(self, request: Request, items: ItemIndex, allowed: np.ndarray) -> str | None:
        if not (request.brands or request.exclude_brands):
            return None
        if not (allowed & (items.brands != "")).any():
            return BRAND_NOT_APPLIED
        if request.brands:
            allowed &= items.with_brands(request.brands)
        if request.exclude_brands:
            allowed &= ~items.with_brands(request.exclude_brands)
        return None


class Price:
    """Price bounds; an item of unknown price does not meet a bound. When no candidate has a price at all the
    bound cannot be applied: the list is left unbounded and a note says so, instead of an empty answer; a bound
    that leaves nothing says so too.
    """

    def apply(self, request: Request, items: ItemIndex, allowed: np.ndarray) -> str | None:
        if request.min_price is None and request.max_price is None:
            return None
        priced = ~np.isnan(items.prices)
        if not (priced & allowed).any():
            return PRICE_NOT_APPLIED
        if request.min_price is not None:
            allowed &= priced & (items.prices >= request.min_price)
        if request.max_price is not None:
            allowed &= priced & (items.prices <= request.max_price)
        if not allowed.any():
            low = "" if request.min_price is None else f" from {request.min_price:g}"
            high = "" if request.max_price is None else f" up to {request.max_price:g}"
            return f"no item priced{low}{high} meets the rest of the request"
        return None


# ---- scorers --------------------------------------------------------------------------------------------------


def histories_of(requests: Sequence[Request], below: int | None = None) -> Sequences:
    """The requests' histories as one batch; ``below`` drops item indices a model does not know (>= below)."""
    rows = [r.history if below is None else r.history[r.history < below] for r in requests]
    return Sequences.from_lists(np.arange(len(rows)), rows)


@dataclass(frozen=True)
class EmbeddingScorer:
    """User vector · the item table of the live catalog: items added after training are scored by their text
    placement. A history the model can read nothing from gets the popularity ranking (not personal).
    """

    model: EmbeddingModel

    def score(self, requests: Sequence[Request], items: ItemIndex, allowed: np.ndarray) -> Scores:
        if items.table is None:
            raise ValueError("an embedding scorer needs the catalog's item table")
        vectors = self.model.user_vectors(histories_of(requests), items.table)  # (B, D)
        total = vectors @ items.table.T  # (B, N)
        personal = np.asarray(vectors.any(axis=1), dtype=bool)
        total[~personal] = items.popularity
        return Scores(total, {}, personal)


@dataclass(frozen=True)
class ModelScorer:
    """Any registry model's ``score``: items the model was never trained on (added to a live catalog later) get
    -inf, so they are never recommended by it (search still finds them). An empty history gets the model's own
    non-personal ranking.
    """

    model: Recommender

    def score(self, requests: Sequence[Request], items: ItemIndex, allowed: np.ndarray) -> Scores:
        known = self.model.score(histories_of(requests, below=items.n_trained))  # (B, n_trained)
        total = np.full((len(requests), len(items)), -np.inf, dtype=np.float32)
        total[:, : known.shape[1]] = known
        usable = np.array([bool((r.history < items.n_trained).any()) for r in requests], dtype=bool)
        return Scores(total, {}, usable if self.model.personalised else np.zeros_like(usable))


def model_scorer(model: Recommender) -> Scorer:
    """The feed scorer for ``model``: through its item vectors when it has them, else through ``score``."""
    return EmbeddingScorer(model) if isinstance(model, EmbeddingModel) else ModelScorer(model)


@dataclass(frozen=True)
class PopularityCorrection:
    """Popularity-bias correction in scoring: ``base`` minus ``strength`` × log(1 + the item's training count) on
    rows the history shapes. For a softmax-trained model this is inverse-propensity weighting, p(i) / count^β
    (β = ``strength``), so 0 keeps the model's scores and 1 divides out the popularity a model learns from its
    data; an item with no count is not penalised. Non-personal rows (the popularity list itself) are left as they
    are. ``strength=None`` takes it from each request (``Request.popularity_correction``).
    """

    base: Scorer
    strength: float | None = None

    def __post_init__(self) -> None:
        check_knob("popularity_correction", self.strength)

    def score(self, requests: Sequence[Request], items: ItemIndex, allowed: np.ndarray) -> Scores:
        scores = self.base.score(requests, items, allowed)
        strengths = np.array(
            [r.popularity_correction if self.strength is None else self.strength for r in requests], dtype=np.float32
        )
        for strength in strengths:
            check_knob("popularity_correction", float(strength))
        rows = scores.personal & (strengths > 0)
        if rows.any():
            penalty = np.log1p(np.maximum(items.popularity, 0.0)).astype(np.float32)  # (N,)
            scores.total[rows] -= strengths[rows, None] * penalty
        return scores


def check_knob(name: str, value: float | None) -> None:
    """A ranking knob is a share or a weight in [0, 1]; None means "read it off the request"."""
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def min_max(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``values`` scaled so that the masked ones span [0, 1]; all zeros when they are constant or none."""
    if not mask.any():
        return np.zeros_like(values)
    low, high = values[mask].min(), values[mask].max()
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


@dataclass(frozen=True)
class ItemSimilarity:
    """Half model-space cosine, half text cosine to the request's seed item. A model without item vectors gives
    its model-space half as its own ranking for a one-item history (ItemKNN: the similarity row), scaled to [0, 1].
    """

    model: Recommender

    def score(self, requests: Sequence[Request], items: ItemIndex, allowed: np.ndarray) -> Scores:
        total = np.zeros((len(requests), len(items)), dtype=np.float32)
        for b, request in enumerate(requests):
            seed = request.seed
            assert seed is not None  # SimilarTo refused the request otherwise
            if items.unit_table is not None:
                model_space = items.unit_table @ items.unit_table[seed]
            elif seed < items.n_trained:
                one = Request(history=np.array([seed]), k=request.k)
                model_space = min_max(
                    ModelScorer(self.model).score([one], items, allowed[b : b + 1]).total[0], allowed[b]
                )
            else:
                model_space = np.zeros(len(items), dtype=np.float32)
            total[b] = 0.5 * model_space + 0.5 * (items.search @ items.search[seed])
        return Scores(total, {"similar": total.copy()}, np.zeros(len(requests), dtype=bool))


@dataclass(frozen=True)
class TextRelevance:
    """Cosine of the query's text vector with each item's; a query that is nothing but constraints ranks by
    popularity (scaled to [0, 1] over the allowed items)."""

    encode_query: Callable[[str], np.ndarray]  # (T,) unit vector of one query text

    def score(self, requests: Sequence[Request], items: ItemIndex, allowed: np.ndarray) -> Scores:
        total = np.zeros((len(requests), len(items)), dtype=np.float32)
        for b, request in enumerate(requests):
            if request.query:
                total[b] = items.search @ self.encode_query(request.query)
            else:
                total[b] = min_max(items.popularity, allowed[b])
        return Scores(total, {"query": total.copy()}, np.zeros(len(requests), dtype=bool))


@dataclass(frozen=True)
class Personalised:
    """A blend: ``base`` plus ``weight`` × the user's feed score scaled to [0, 1] over the allowed items, for rows
    whose history shapes the feed. With ``rescale_base`` the base is scaled to [0, 1] too and weighted by
    1 - ``weight``, so the personal part is at most its weight of the score.
    """

    base: Scorer
    feed: Scorer
    weight: float
    rescale_base: bool = False

    def score(self, requests: Sequence[Request], items: ItemIndex, allowed: np.ndarray) -> Scores:
        base = self.base.score(requests, items, allowed)
        anonymous = all(len(r.history) == 0 for r in requests)
        if anonymous:
            return base
        feed = self.feed.score(requests, items, allowed)
        total = base.total.copy()
        personal_part = np.zeros_like(total)
        base_parts = {name: part.copy() for name, part in base.parts.items()}
        for b in np.flatnonzero(feed.personal):
            personal_part[b] = self.weight * min_max(feed.total[b], allowed[b])
            if self.rescale_base:
                scale = 1 - self.weight
                total[b] = scale * min_max(base.total[b], allowed[b])
                for name, part in base_parts.items():
                    part[b] = scale * min_max(base.parts[name][b], allowed[b])
        return Scores(total + personal_part, {**base_parts, "personal": personal_part}, feed.personal.copy())
