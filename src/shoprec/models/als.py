"""Implicit-feedback matrix factorisation (Hu, Koren & Volinsky 2008) via the ``implicit`` library.

A history is scored by fold-in: its user factor is the exact least-squares solution against the fitted item
factors, the same problem training solves for each user, so unseen users and grown histories need no refit.
"""

from __future__ import annotations

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from shoprec.config import Config
from shoprec.models.base import ClosedFormRecommender, TrainData, finish_scores, item_popularity
from shoprec.types import Sequences


class ALSConfig(Config):
    factors: int = 256  # latent dimensions
    regularization: float = 10.0  # L2 weight on user and item factors
    alpha: float = 40.0  # confidence of an observed interaction (implicit's convention: c_ui = alpha, unseen = 1)
    iterations: int = 15  # alternating sweeps over users and items
    num_threads: int = 0  # 0 = every core
    seed: int = 0  # initial factors


class ALS(ClosedFormRecommender):
    """Binary user x item confidences scaled by ``alpha``; score = folded-in user factor · item factors."""

    name = "als"
    config_class = ALSConfig
    config: ALSConfig

    def __init__(self, config: ALSConfig | None = None) -> None:
        super().__init__(config)
        self._solver = self._new_solver()
        self._popularity = np.zeros(0, dtype=np.float32)  # (n_items,)

    def _new_solver(self) -> AlternatingLeastSquares:
        # implicit warns when BLAS runs its own thread pool inside its parallel solver; keep BLAS single-threaded.
        with threadpool_limits(1, "blas"):
            return AlternatingLeastSquares(
                factors=self.config.factors,
                regularization=self.config.regularization,
                alpha=self.config.alpha,
                iterations=self.config.iterations,
                calculate_training_loss=False,
                num_threads=self.config.num_threads,
                random_state=self.config.seed,
            )

    def fit(self, data: TrainData) -> None:
        self._solver = self._new_solver()
        with threadpool_limits(1, "blas"):
            self._solver.fit(data.sequences.to_csr(data.n_items), show_progress=False)
        # Items without training interactions (padding included) keep only their random start; the least-squares
        # answer with no evidence is 0, which also keeps them out of the fold-in and out of every ranking's head.
        self._popularity = item_popularity(data.sequences, data.n_items)
        self._solver.item_factors[self._popularity == 0] = 0.0
        self._solver.user_factors = None  # training users are never scored by id
        self.n_items = data.n_items

    def score(self, histories: Sequences) -> np.ndarray:
        self._check_fitted()
        rows = histories.to_csr(self.n_items)  # (B, I) binary
        with threadpool_limits(1, "blas"):
            users = self._solver.recalculate_user(np.arange(len(histories)), rows)  # (B, factors)
        scores = users @ self._solver.item_factors.T  # (B, I)
        return finish_scores(scores.astype(np.float32, copy=False), self._popularity)

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_factors": self._solver.item_factors, "popularity": self._popularity}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self._solver = self._new_solver()
        self._solver.item_factors = state["item_factors"]
        self._popularity = state["popularity"]
