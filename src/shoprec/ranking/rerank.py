"""Re-rankers: stages that reorder a pool of the best allowed items (``Ranker`` asks each for ``pool(request)``
items). Each has one knob in [0, 1], fixed or taken from the request (the API's query parameters); at 0 a stage
asks for no larger pool and returns the order untouched."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from shoprec.ranking.items import ItemIndex
from shoprec.ranking.stages import min_max
from shoprec.ranking.types import Request


class KnobStage:
    """What the stages here share: one knob in [0, 1] named ``knob``, fixed on the stage or, when None there, read
    off each request under the same name; a pool of ``pool_factor`` x k only while it is above 0."""

    knob: ClassVar[str]
    pool_factor: int

    def __post_init__(self) -> None:
        _check(self.knob, getattr(self, self.knob))

    def pool(self, request: Request) -> int:
        return request.k * self.pool_factor if self.setting(request) > 0 else request.k

    def setting(self, request: Request) -> float:
        fixed: float | None = getattr(self, self.knob)
        value: float = getattr(request, self.knob) if fixed is None else fixed
        _check(self.knob, value)
        return value


@dataclass(frozen=True)
class MMR(KnobStage):
    """Maximal marginal relevance (Carbonell & Goldstein, SIGIR 1998): each next item maximises
    (1 - diversity) × relevance - diversity × its highest cosine to the items already chosen, in the model's item
    space (in the text space for a model without item vectors). Relevance is the score scaled to [0, 1] over the
    pool. ``diversity`` 0 keeps the score order exactly (and costs nothing); 1 ignores relevance after the first
    item. ``diversity=None`` takes it from each request (``Request.diversity``: the API's ``?diversity=``).
    """

    knob: ClassVar[str] = "diversity"
    diversity: float | None = None
    pool_factor: int = 5  # the pool is this many times k: candidates far below the top are not worth promoting

    def rerank(
        self, request: Request, items: ItemIndex, pool: np.ndarray, scores: np.ndarray
    ) -> tuple[np.ndarray, str | None]:
        diversity = self.setting(request)
        if diversity == 0:
            return pool, None
        space = items.unit_table if items.unit_table is not None else items.search
        relevance = _relevance(scores, pool)
        similarity = space[pool] @ space[pool].T  # (P, P)
        closest = np.full(len(pool), -np.inf)  # highest similarity to anything chosen so far
        value = (1 - diversity) * relevance
        chosen: list[int] = []
        for _ in range(min(request.k, len(pool))):
            gain = value - diversity * np.maximum(closest, 0.0) if chosen else value.copy()
            gain[chosen] = -np.inf
            best = int(np.argmax(gain))  # ties: the earlier (higher-scored) item
            chosen.append(best)
            closest = np.maximum(closest, similarity[best])
        return pool[chosen], None


CALIBRATION_NOT_APPLIED = "calibration needs a history with categorised items; the list is the model's order"


@dataclass(frozen=True)
class Calibration(KnobStage):
    """Calibrated recommendations (Steck, RecSys 2018): each next item maximises (1 - calibration) × its relevance
    - calibration × KL(p || q~) (Steck's list objective, less the relevance already chosen, the same for every
    candidate), p the category mix of the user's whole history, q that of the list so far, q~ = (1 - alpha) q +
    alpha p. Categories are the items' ``category_groups`` (the audit's level, so the protocol's CalibrationKL
    measures what this optimises). An item without one adds nothing to p; in the list it takes a slot from every
    category of q, as in Steck's q(g|u), so it is never a free way to keep the mix. Relevance is the score scaled
    to [0, 1] over the pool. ``calibration=None`` takes it from each request.
    """

    knob: ClassVar[str] = "calibration"
    calibration: float | None = None
    pool_factor: int = 5
    alpha: float = 0.01

    def rerank(
        self, request: Request, items: ItemIndex, pool: np.ndarray, scores: np.ndarray
    ) -> tuple[np.ndarray, str | None]:
        weight = self.setting(request)
        if weight == 0:
            return pool, None
        groups = items.category_groups
        seen = groups[request.history]
        seen = seen[seen >= 0]
        if len(seen) == 0:
            return pool, CALIBRATION_NOT_APPLIED
        n_groups = int(groups.max()) + 1
        target = np.bincount(seen, minlength=n_groups) / len(seen)  # p
        relevance = _relevance(scores, pool)
        adds = np.zeros((len(pool), n_groups))  # each candidate's contribution to the list's category counts
        grouped = np.flatnonzero(groups[pool] >= 0)
        adds[grouped, groups[pool][grouped]] = 1.0
        counts = np.zeros(n_groups)
        available = np.ones(len(pool), dtype=bool)
        held = target > 0  # the KL's terms: categories the history holds
        chosen: list[int] = []
        for _ in range(min(request.k, len(pool))):
            mix = (counts + adds) / (len(chosen) + 1)  # (P, C): the list's mix with each candidate added
            smoothed = (1 - self.alpha) * mix + self.alpha * target
            divergence = (target[held] * np.log(target[held] / smoothed[:, held])).sum(axis=1)
            value = (1 - weight) * relevance - weight * divergence
            value[~available] = -np.inf
            best = int(np.argmax(value))  # ties: the earlier (higher-scored) item
            chosen.append(best)
            available[best] = False
            counts += adds[best]
        return pool[chosen], None


TAIL_SHORT = "the candidates held too few long-tail items to fill the asked share"


@dataclass(frozen=True)
class TailExposure(KnobStage):
    """A floor on the long tail's share of every list (a constrained greedy): at least ceil(tail_share × k) slots
    go to tail items (``ItemIndex.tail``: the audit's bottom half by training count, new items included). The list
    keeps its best-scored items, and the lowest-scored non-tail ones give way to the best-scored tail items of a
    pool of ``pool_factor`` × k; the list stays in score order. ``tail_share=None`` takes it from each request.
    """

    knob: ClassVar[str] = "tail_share"
    tail_share: float | None = None
    pool_factor: int = 20  # tail items rarely score near the top: look further down than MMR does

    def rerank(
        self, request: Request, items: ItemIndex, pool: np.ndarray, scores: np.ndarray
    ) -> tuple[np.ndarray, str | None]:
        share = self.setting(request)
        k = min(request.k, len(pool))
        if share == 0 or k == 0:
            return pool, None
        tail = items.tail[pool]
        wanted = math.ceil(share * k)
        if tail[:k].sum() >= wanted:  # already there: a floor never takes tail items out
            return pool, None
        tail_slots = np.flatnonzero(tail)[:wanted]  # pool positions of the best tail items
        others = np.flatnonzero(~tail)[: k - len(tail_slots)]
        chosen = np.sort(np.concatenate([tail_slots, others]))  # pool order is score order
        return pool[chosen], TAIL_SHORT if len(tail_slots) < wanted else None


def _relevance(scores: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """The pool's scores scaled to [0, 1]: what a re-ranker trades against its own aim."""
    return min_max(scores[pool].astype(np.float64), np.ones(len(pool), dtype=bool))


def _check(name: str, value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
