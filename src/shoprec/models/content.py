"""Content-based: a user is the recency-weighted mean of the text vectors of what they had.

It needs no co-interactions, so it ranks items nobody has touched yet (cold start) by their text alone.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from shoprec.config import Config
from shoprec.models.base import ClosedFormRecommender, EmbeddingModel, TrainData, finish_scores, item_popularity
from shoprec.types import Sequences


class ContentConfig(Config):
    recency_decay: float = Field(0.3, gt=0.0, le=1.0)  # weight of the i-th most recent item = decay**i (i from 0)
    max_history: int = Field(50, ge=1)  # only the most recent items count


class Content(ClosedFormRecommender, EmbeddingModel):
    """profile(h) = Σ w_i v_i / Σ w_i over the last ``max_history`` items with text, w_i = decay**i;
    score(h, j) = profile · v_j, the cosine to each item's text vector (vectors are unit length).
    A history with no text behind it scores by popularity.
    """

    name = "content"
    config_class = ContentConfig
    config: ContentConfig

    def __init__(self, config: ContentConfig | None = None) -> None:
        super().__init__(config)
        self._vectors = np.zeros((0, 0), dtype=np.float32)  # (n_items, D), row 0 padding zeros
        self._popularity = np.zeros(0, dtype=np.float32)  # (n_items,)

    @property
    def uses_item_text(self) -> bool:
        return True

    def fit(self, data: TrainData) -> None:
        if data.item_vectors is None:
            raise ValueError("content needs item text vectors: pass TrainData.item_vectors (see encode_catalog)")
        vectors = np.asarray(data.item_vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != data.n_items:
            raise ValueError(f"item_vectors must be ({data.n_items}, D), got {vectors.shape}")
        self._restore({"vectors": vectors, "popularity": item_popularity(data.sequences, data.n_items)})
        self.n_items = data.n_items

    def score(self, histories: Sequences) -> np.ndarray:
        self._check_fitted()
        scores = self.user_vectors(histories, self._vectors) @ self._vectors.T  # (B, I)
        return finish_scores(scores.astype(np.float32, copy=False), self._popularity)

    @property
    def popularity(self) -> np.ndarray:
        return self._popularity

    def item_table(self, new_text: np.ndarray | None = None) -> np.ndarray:
        if new_text is None or len(new_text) == 0:
            return self._vectors
        if new_text.shape[1] != self._vectors.shape[1]:
            raise ValueError(f"new item vectors have {new_text.shape[1]} dims, the model {self._vectors.shape[1]}")
        return np.vstack([self._vectors, np.asarray(new_text, dtype=np.float32)])

    def user_vectors(self, histories: Sequences, table: np.ndarray) -> np.ndarray:
        weights = self._history_weights(histories, table)  # (B, I)
        totals = np.asarray(weights.sum(axis=1), dtype=np.float32)  # (B, 1)
        profiles = np.asarray(weights @ table, dtype=np.float32)  # (B, D)
        return np.divide(profiles, totals, out=np.zeros_like(profiles), where=totals > 0)

    def _history_weights(self, histories: Sequences, table: np.ndarray) -> sp.csr_matrix:
        """(B, I) recency weights; repeats add up, and items without a text vector get no weight."""
        lengths = histories.lengths()
        from_end = np.repeat(histories.indptr[1:], lengths) - 1 - np.arange(histories.n_interactions)  # 0 = newest
        weights = np.where(from_end < self.config.max_history, self.config.recency_decay**from_end, 0.0)
        weights[~np.any(table[histories.items] != 0, axis=1)] = 0.0
        matrix = sp.csr_matrix(
            (weights.astype(np.float32), histories.items, histories.indptr), shape=(len(histories), len(table))
        )
        matrix.sum_duplicates()
        return matrix

    def _state(self) -> dict[str, np.ndarray]:
        return {"vectors": self._vectors, "popularity": self._popularity}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._vectors = np.ascontiguousarray(state["vectors"], dtype=np.float32)
        self._popularity = state["popularity"]
