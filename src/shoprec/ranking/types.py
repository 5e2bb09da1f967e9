"""What a ranking is asked and what it answers, in item indices: no HTTP schema and no raw id reaches this layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple, TypedDict

import numpy as np

ReasonKind = Literal["history", "query", "attribute", "similar", "popular"]


class Reason(NamedTuple):
    """One thing that drove an item's place, with its share of the score (a list's shares sum to about 1).

    ``item`` is the item index the reason names (a history item, or the item a similar-items list started from).
    A named tuple, not a frozen dataclass: a feed makes about thirty, and a frozen dataclass's ``__init__`` cost
    more Python work than the rest of the feed's reasons together.
    """

    kind: ReasonKind
    share: float
    item: int | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Request:
    """One ranking to compute. ``history`` is the user's whole history (item indices, oldest first); an anonymous
    request has an empty one. ``query`` and ``seed`` are read only by the stages that need them (search, similar).
    """

    history: np.ndarray
    k: int
    exclude_seen: bool = True
    category: str | None = None
    categories: tuple[str, ...] = ()  # category names a search query stated: an item must be in one of them
    exclude_categories: tuple[str, ...] = ()  # category names ruled out: an item in any of them is not returned
    brands: tuple[str, ...] = ()  # brand names asked for: an item must have one of them
    exclude_brands: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None
    query: str | None = None
    seed: int | None = None
    diversity: float = 0.0  # MMR's trade-off for a re-ranker that takes it from the request (0: relevance only)
    calibration: float = 0.0  # the same for category calibration
    tail_share: float = 0.0  # the least share of the list that goes to long-tail items
    provider_share: float = 0.0  # the least share that goes to items of small providers
    popularity_correction: float = 0.0  # how much of an item's training popularity the score divides out (0: none)


class Knobs(TypedDict, total=False):
    """A request's ranking knobs by name, as the API's query parameters set them (unset: 0, off)."""

    diversity: float
    calibration: float
    tail_share: float
    provider_share: float
    popularity_correction: float


@dataclass(frozen=True)
class Scores:
    """A scorer's answer for a batch: ``total`` ranks; ``parts`` are named components (summing to ``total`` on the
    allowed items) from which explainers take shares; ``personal`` says which rows the history actually shaped.
    """

    total: np.ndarray  # (B, N)
    parts: dict[str, np.ndarray]  # name -> (B, N)
    personal: np.ndarray  # (B,) bool

    def row(self, b: int) -> Scores:
        return Scores(self.total[b : b + 1], {n: p[b : b + 1] for n, p in self.parts.items()}, self.personal[b : b + 1])


@dataclass(frozen=True)
class Ranked:
    """One ranked list: item indices best first (at most ``k``), their scores and reasons."""

    items: np.ndarray  # (n,) int64
    scores: np.ndarray  # (n,) float
    reasons: tuple[tuple[Reason, ...], ...]
    personal: bool  # False: the history gave nothing to go on, so the list is not personal
    notes: tuple[str, ...] = field(default=())  # what a filter or re-ranker could not do, said to the caller
