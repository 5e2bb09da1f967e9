"""Item-based k-nearest-neighbours over co-interactions: strong on sparse e-commerce data, cheap to fit."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from shoprec.config import Config
from shoprec.models.base import (
    ClosedFormRecommender,
    TrainData,
    csr_from_state,
    csr_state,
    finish_scores,
    item_popularity,
    keep_top_per_row,
)
from shoprec.types import Sequences


class ItemKNNConfig(Config):
    neighbours: int = 100  # similar items kept per item
    shrink: float = 50.0  # added to the cosine denominator: damps similarities resting on few shared users


class ItemKNN(ClosedFormRecommender):
    """sim(i, j) = |U_i ∩ U_j| / (sqrt|U_i| · sqrt|U_j| + shrink), no self-similarity, top ``neighbours`` per item;
    score(h) = binary history · S, so an item scores the summed similarity to what the user already has.
    """

    name = "itemknn"
    config_class = ItemKNNConfig
    config: ItemKNNConfig

    def __init__(self, config: ItemKNNConfig | None = None) -> None:
        super().__init__(config)
        self._similarity = sp.csr_matrix(np.zeros((0, 0), dtype=np.float32))  # (n_items, n_items)
        self._popularity = np.zeros(0, dtype=np.float32)  # (n_items,)

    def fit(self, data: TrainData) -> None:
        users_items = data.sequences.to_csr(data.n_items)  # (U, I) binary
        co = (users_items.T @ users_items).tocsr()  # (I, I) shared-user counts
        co.setdiag(0)
        co.eliminate_zeros()
        norms = np.sqrt(np.asarray(users_items.sum(axis=0), dtype=np.float64).ravel())  # (I,)
        rows = np.repeat(np.arange(co.shape[0]), np.diff(co.indptr))
        co.data = (co.data / (norms[rows] * norms[co.indices] + self.config.shrink)).astype(np.float32)
        self._similarity = keep_top_per_row(co, self.config.neighbours)
        self._popularity = item_popularity(data.sequences, data.n_items)
        self.n_items = data.n_items

    def score(self, histories: Sequences) -> np.ndarray:
        self._check_fitted()
        scores = (histories.to_csr(self.n_items) @ self._similarity).toarray()  # (B, I)
        return finish_scores(scores.astype(np.float32, copy=False), self._popularity)

    def _state(self) -> dict[str, np.ndarray]:
        return {**csr_state("similarity", self._similarity), "popularity": self._popularity}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._similarity = csr_from_state(state, "similarity")
        self._popularity = state["popularity"]
