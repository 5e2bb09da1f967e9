"""User-based k-nearest-neighbours: a history borrows the items of the training users who share most with it."""

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

CHUNK = 1024  # histories per similarity block: bounds the (chunk, n_train_users) product


class UserKNNConfig(Config):
    neighbours: int = 500  # training users kept per history
    shrink: float = 0.0  # added to the cosine denominator: damps similarities resting on few shared items


class UserKNN(ClosedFormRecommender):
    """sim(h, v) = |h ∩ X_v| / (sqrt|h| · sqrt|X_v| + shrink) against every training row v, top ``neighbours``;
    score = Σ_v sim(h, v) · X_v. The state is the binary training matrix: rows only, no user ids.
    """

    name = "userknn"
    config_class = UserKNNConfig
    config: UserKNNConfig

    def __init__(self, config: UserKNNConfig | None = None) -> None:
        super().__init__(config)
        self._train = sp.csr_matrix(np.zeros((0, 0), dtype=np.float32))  # (U, n_items) binary
        self._popularity = np.zeros(0, dtype=np.float32)  # (n_items,)

    def fit(self, data: TrainData) -> None:
        self._train = data.sequences.to_csr(data.n_items)
        self._popularity = item_popularity(data.sequences, data.n_items)
        self.n_items = data.n_items

    def score(self, histories: Sequences) -> np.ndarray:
        self._check_fitted()
        queries = histories.to_csr(self.n_items)  # (B, I) binary
        blocks = [self._score_block(queries[start : start + CHUNK]) for start in range(0, len(histories), CHUNK)]
        scores = np.vstack(blocks) if blocks else np.zeros((0, self.n_items), dtype=np.float32)
        return finish_scores(scores, self._popularity)

    def _score_block(self, queries: sp.csr_matrix) -> np.ndarray:
        overlap = (queries @ self._train.T).tocsr()  # (b, U) shared-item counts
        query_norms = np.sqrt(np.diff(queries.indptr).astype(np.float64))  # (b,)
        train_norms = np.sqrt(np.diff(self._train.indptr).astype(np.float64))  # (U,)
        rows = np.repeat(np.arange(overlap.shape[0]), np.diff(overlap.indptr))
        denominator = query_norms[rows] * train_norms[overlap.indices] + self.config.shrink
        overlap.data = (overlap.data / denominator).astype(np.float32)
        neighbours = keep_top_per_row(overlap, self.config.neighbours)
        return (neighbours @ self._train).toarray().astype(np.float32, copy=False)  # (b, I)

    def _state(self) -> dict[str, np.ndarray]:
        return {**csr_state("train", self._train), "popularity": self._popularity}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._train = csr_from_state(state, "train")
        self._popularity = state["popularity"]
