"""Most-popular: the floor every personalised model must clear, and the ranking for users we know nothing of."""

from __future__ import annotations

import numpy as np

from shoprec.config import Config
from shoprec.models.base import ClosedFormRecommender, TrainData, item_popularity
from shoprec.types import Sequences


class PopConfig(Config):
    """Popularity has no options."""


class Pop(ClosedFormRecommender):
    """Score = number of training interactions with the item (repeats count), the same for every history."""

    name = "pop"
    config_class = PopConfig
    personalised = False

    def __init__(self, config: PopConfig | None = None) -> None:
        super().__init__(config)
        self._counts = np.zeros(0, dtype=np.float32)  # (n_items,)

    def fit(self, data: TrainData) -> None:
        self._counts = item_popularity(data.sequences, data.n_items)
        self.n_items = data.n_items

    def score(self, histories: Sequences) -> np.ndarray:
        self._check_fitted()
        scores = np.tile(self._counts, (len(histories), 1))  # (B, n_items)
        scores[:, 0] = -np.inf
        return scores

    def _state(self) -> dict[str, np.ndarray]:
        return {"counts": self._counts}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._counts = state["counts"]
