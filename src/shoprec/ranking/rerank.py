"""Re-rankers: stages that reorder a pool of the best allowed items (``Ranker`` asks each for ``pool(k)`` items)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoprec.ranking.items import ItemIndex
from shoprec.ranking.stages import min_max
from shoprec.ranking.types import Request


@dataclass(frozen=True)
class MMR:
    """Maximal marginal relevance (Carbonell & Goldstein, SIGIR 1998): each next item maximises
    (1 - diversity) × relevance - diversity × its highest cosine to the items already chosen, in the model's item
    space (in the text space for a model without item vectors). Relevance is the score scaled to [0, 1] over the
    pool. ``diversity`` 0 keeps the score order exactly (and costs nothing); 1 ignores relevance after the first
    item. ``diversity=None`` takes it from each request (``Request.diversity``: the API's ``?diversity=``).
    """

    diversity: float | None = None
    pool_factor: int = 5  # the pool is this many times k: candidates far below the top are not worth promoting

    def __post_init__(self) -> None:
        _check(self.diversity)

    def pool(self, request: Request) -> int:
        return request.k * self.pool_factor if self._diversity(request) > 0 else request.k

    def rerank(
        self, request: Request, items: ItemIndex, pool: np.ndarray, scores: np.ndarray
    ) -> tuple[np.ndarray, str | None]:
        diversity = self._diversity(request)
        if diversity == 0:
            return pool, None
        space = items.unit_table if items.unit_table is not None else items.search
        relevance = min_max(scores[pool].astype(np.float64), np.ones(len(pool), dtype=bool))
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

    def _diversity(self, request: Request) -> float:
        if self.diversity is not None:
            return self.diversity
        _check(request.diversity)
        return request.diversity


def _check(diversity: float | None) -> None:
    if diversity is not None and not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be in [0, 1], got {diversity}")
