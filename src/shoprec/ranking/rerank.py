"""Re-rankers: stages that reorder a pool of the best allowed items (``Ranker`` asks each for ``pool(request)``
items). Each has one knob in [0, 1], fixed or taken from the request (the API's query parameters); at 0 a stage
asks for no larger pool and returns the order untouched.

Each returns the whole pool, its chosen k first and the rest behind them in the order they came, so a later stage
still has the pool to choose from: a tail floor after MMR keeps MMR's list and swaps its last non-tail picks for
the best tail items of the pool."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import logsumexp

from shoprec.ranking.items import ItemIndex
from shoprec.ranking.stages import check_knob
from shoprec.ranking.types import Request


class KnobStage:
    """What the stages here share: one knob in [0, 1] named ``knob``, fixed on the stage or, when None there, read
    off each request under the same name; a pool of ``pool_factor`` x k only while it is above 0."""

    knob: ClassVar[str]
    pool_factor: int

    def __post_init__(self) -> None:
        check_knob(self.knob, getattr(self, self.knob))

    def pool(self, request: Request) -> int:
        return request.k * self.pool_factor if self.setting(request) > 0 else request.k

    def setting(self, request: Request) -> float:
        fixed: float | None = getattr(self, self.knob)
        value: float = getattr(request, self.knob) if fixed is None else fixed
        check_knob(self.knob, value)
        return value


@dataclass(frozen=True)
class MMR(KnobStage):
    """Maximal marginal relevance (Carbonell & Goldstein, SIGIR 1998): each next item maximises
    (1 - diversity) × its relevance in the next slot - diversity × its highest cosine to the items already chosen.
    ``diversity`` 0 keeps the score order exactly (and costs nothing); 1 ignores relevance after the first item.
    ``diversity=None`` takes it from each request (``Request.diversity``: the API's ``?diversity=``).

    Relevance is calibration's: the model's probability of the item times DCG's discount of the slot, in
    percentage points of expected NDCG (``Calibration``), so a list the model is sure of gives up little, and the
    top slots stay the model's while the lower ones diversify. On Scientific's validation split, at the same
    NDCG@10 cost, this raised the list's diversity about twice as much as relevance scaled to [0, 1] over the pool.

    Similarity is over the items' text vectors (the search encoder's) when every item has one: diversity as a
    shopper reads it, in titles and categories; else in the model's item space. The text space is the one the
    audit measures where a catalogue has no categories, and on Scientific it doubled what a setting bought there
    (docs/benchmarks.md, "Responsible ranking").
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
        own = pool[: self.pool(request)]  # a later stage may have asked for a larger pool: choose from our own
        space = diversity_space(items)
        relevance = PERCENT * _probabilities(scores, own)
        similarity = space[own] @ space[own].T  # (P, P)
        closest = np.zeros(len(own))  # highest similarity to anything chosen so far (an opposite counts as none)
        available = np.ones(len(own), dtype=bool)
        chosen: list[int] = []
        for slot in range(min(request.k, len(own))):
            value = (1 - diversity) * relevance / np.log2(slot + 2) - diversity * closest
            value[~available] = -np.inf
            best = int(np.argmax(value))  # ties: the earlier (higher-scored) item
            chosen.append(best)
            available[best] = False
            closest = np.maximum(closest, similarity[best])
        return _chosen_first(pool, np.array(chosen, dtype=np.int64)), None


def diversity_space(items: ItemIndex) -> np.ndarray:
    """(N, D) unit item vectors MMR measures similarity in: the text vectors when every real item has one, else the
    model's item table."""
    texts = items.search[1:]
    if (texts.shape[1] > 0 and bool(np.any(texts, axis=1).all())) or items.unit_table is None:
        return items.search
    return items.unit_table


CALIBRATION_NOT_APPLIED = "calibration needs a history with categorised items; the list is the model's order"


PERCENT = 100.0  # calibration's relevance unit: a percentage point of expected NDCG


@dataclass(frozen=True)
class Calibration(KnobStage):
    """Calibrated recommendations (Steck, RecSys 2018): each next item maximises (1 - calibration) × its relevance
    in the next slot - calibration × KL(p || q~) (Steck's list objective, less the relevance already chosen, the
    same for every candidate), p the category mix of the user's whole history, q that of the list so far,
    q~ = (1 - alpha) q + alpha p. Categories are the items' ``category_groups`` (the audit's level, so the
    protocol's CalibrationKL measures what this optimises). An item without one adds nothing to p; in the list it
    takes a slot from every category of q, as in Steck's q(g|u), so it is never a free way to keep the mix.
    ``calibration=None`` takes it from each request.

    Relevance in slot j (from 1) is the model's probability of the item, its softmax over every item it scores
    (``_probabilities``), times DCG's discount 1 / log2(j + 1). Steck sums the model's predicted probabilities of the
    chosen items, the list's expected hits; with the discount the sum is the model's expected NDCG@k of the list
    (one next item, so the ideal DCG is 1), the accuracy the trade-off is judged by. It is counted in percentage
    points, so calibration / (1 - calibration) is the nats of KL given for one point of expected NDCG, the same for
    every user, pool width and shift of the scores, and the useful settings sit mid-range rather than near 0.
    For a model trained by softmax cross-entropy over the catalogue (SASRec here) the softmax is its own
    estimate of p(next item | history); other models' scores are read as logits. The probability keeps how sure
    the model is: a list it is sure of gives up little, an unsure one is calibrated; scores scaled to [0, 1] over
    the pool made every user's margins alike and let the pool's lowest score set the scale. The discount keeps the
    top slots for the model and calibrates the lower ones (docs/benchmarks.md, "Responsible ranking", has what each
    setting costs).
    """

    knob: ClassVar[str] = "calibration"
    calibration: float | None = None
    # A candidate's probability says what it is worth, so a wide pool costs little NDCG and buys KL: on MovieLens-1M's
    # validation split 200 candidates gave more KL for the same NDCG@10 than 50 or 100 (0.5 ms a list, loaded machine).
    pool_factor: int = 20
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
        held, counts_seen = np.unique(seen, return_counts=True)  # the KL's terms: categories the history holds
        target = counts_seen / len(seen)  # p over them (H,)
        own = pool[: self.pool(request)]  # a later stage may have asked for a larger pool: choose from our own
        relevance = _probabilities(scores, own)
        column = np.searchsorted(held, groups[own]).clip(max=len(held) - 1)
        counted = held[column] == groups[own]  # candidates in a held category; the others change no KL term
        adds = np.zeros((len(own), len(held)))  # (P, H): each candidate's contribution to the held counts
        adds[np.flatnonzero(counted), column[counted]] = 1.0
        counts = np.zeros(len(held))
        available = np.ones(len(own), dtype=bool)
        chosen: list[int] = []
        for slot in range(min(request.k, len(own))):
            mix = (counts + adds) / (slot + 1)  # (P, H): the list's mix with each candidate added
            smoothed = (1 - self.alpha) * mix + self.alpha * target
            divergence = (target * np.log(target / smoothed)).sum(axis=1)
            value = (1 - weight) * PERCENT * relevance / np.log2(slot + 2) - weight * divergence
            value[~available] = -np.inf
            best = int(np.argmax(value))  # ties: the earlier (higher-scored) item
            chosen.append(best)
            available[best] = False
            counts += adds[best]
        return _chosen_first(pool, np.array(chosen, dtype=np.int64)), None


TAIL_SHORT = "the candidates held too few long-tail items to fill the asked share"
PROVIDERS_SHORT = "the candidates held too few items of small providers to fill the asked share"


class ExposureFloor(KnobStage):
    """A floor on one group's share of every list (a constrained greedy): at least ceil(share × k) slots go to
    the items an ``ItemIndex`` mask names (``group``). The list keeps its best-placed items, and the
    lowest-placed others give way to the best-placed items of the group in a pool of ``pool_factor`` × k; the
    list stays in the order it came (score order, or an earlier stage's)."""

    group: ClassVar[str]  # the (N,) bool ``ItemIndex`` field of the items the floor is for
    short: ClassVar[str]  # the note when the pool holds too few of them
    pool_factor: int = 20  # such items rarely score near the top: look further down than MMR does

    def rerank(
        self, request: Request, items: ItemIndex, pool: np.ndarray, scores: np.ndarray
    ) -> tuple[np.ndarray, str | None]:
        return ExposureFloors((self,)).rerank(request, items, pool, scores)


@dataclass(frozen=True)
class ExposureFloors:
    """Several floors met together, so one never undoes another: starting from the list as it came, each floor
    in turn swaps in the best-placed items of its group and swaps out the lowest-placed item that is not of its
    group and whose loss leaves every floor before it met. Two floors run one after the other would not: a tail
    floor would give away the small-provider items a provider floor had just brought in."""

    floors: tuple[ExposureFloor, ...]

    def pool(self, request: Request) -> int:
        return max(floor.pool(request) for floor in self.floors)

    def rerank(
        self, request: Request, items: ItemIndex, pool: np.ndarray, scores: np.ndarray
    ) -> tuple[np.ndarray, str | None]:
        k = min(request.k, len(pool))
        active = [floor for floor in self.floors if floor.setting(request) > 0]
        if not active or k == 0:
            return pool, None
        own = pool[: self.pool(request)]  # whatever larger pool another stage asked for
        groups = [getattr(items, floor.group)[own] for floor in active]  # (P,) bool each
        wanted = [math.ceil(floor.setting(request) * k) for floor in active]
        chosen = np.zeros(len(own), dtype=bool)
        chosen[:k] = True
        short: list[str] = []
        for f, (group, want) in enumerate(zip(groups, wanted, strict=True)):
            while (group & chosen).sum() < want:
                incoming = np.flatnonzero(group & ~chosen)
                outgoing = [
                    p
                    for p in np.flatnonzero(chosen & ~group)[::-1]
                    if all(not groups[g][p] or (groups[g] & chosen).sum() > wanted[g] for g in range(f))
                ]
                if len(incoming) == 0 or not outgoing:
                    short.append(active[f].short)
                    break
                chosen[incoming[0]], chosen[outgoing[0]] = True, False
        if chosen[:k].all():  # every floor met by the list as it came
            return pool, "; ".join(short) or None
        return _chosen_first(pool, np.flatnonzero(chosen)), "; ".join(short) or None


@dataclass(frozen=True)
class TailExposure(ExposureFloor):
    """At least ``tail_share`` of each list for long-tail items (``ItemIndex.tail``: the audit's bottom half by
    training count, new items included). ``tail_share=None`` takes it from each request."""

    knob: ClassVar[str] = "tail_share"
    group: ClassVar[str] = "tail"
    short: ClassVar[str] = TAIL_SHORT
    tail_share: float | None = None


@dataclass(frozen=True)
class ProviderExposure(ExposureFloor):
    """At least ``provider_share`` of each list for items of small providers (``ItemIndex.small_provider``: the
    brands, or categories where a catalogue has no brands, in the bottom half by training interactions), so a
    few big brands do not take every slot. ``provider_share=None`` takes it from each request."""

    knob: ClassVar[str] = "provider_share"
    group: ClassVar[str] = "small_provider"
    short: ClassVar[str] = PROVIDERS_SHORT
    provider_share: float | None = None


def _chosen_first(pool: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """The pool with the ``chosen`` positions first, in that order, then the rest as they came."""
    rest = np.ones(len(pool), dtype=bool)
    rest[chosen] = False
    return np.concatenate([pool[chosen], pool[rest]])


def _probabilities(scores: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """The pool's softmax probabilities over all of ``scores`` (-inf: an item the model cannot score)."""
    row = scores.astype(np.float64)
    if not np.isfinite(row.max()):  # nothing scored: no item is likelier than another
        return np.zeros(len(pool))
    return np.exp(row[pool] - logsumexp(row))
