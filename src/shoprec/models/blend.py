"""Two recommenders' scores blended with a weight chosen on validation: a Transformer that reads order and text
beside an item neighbourhood that reads co-occurrence, each right where the other is weak.

Scores of different models live on different scales (a softmax model's logits, summed cosine similarities), so
each row is standardised over the items both can score before mixing: score = w z(first) + (1 - w) z(second).
Weights 1 and 0 return the first or second part's own scores, untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import numpy as np
from pydantic import Field

from shoprec.config import Config
from shoprec.models.base import Recommender
from shoprec.types import Sequences

WEIGHTS = tuple(round(0.1 * step, 1) for step in range(11))


class BlendPart(Config):
    model: str  # registry name
    options: dict[str, Any] = Field(default_factory=dict)  # validated by that model's own config class


class BlendConfig(Config):
    parts: tuple[BlendPart, BlendPart]
    weight: float | None = Field(default=None, ge=0, le=1)  # the first part's share; None: chosen on validation
    grid: tuple[float, ...] = WEIGHTS  # the weights validation chooses from (when ``weight`` is None)


class Blend(Recommender):
    """``parts`` are fit as any model is (``training.fit.fit_model``), then ``settle`` picks the weight."""

    name = "blend"
    config_class = BlendConfig
    config: BlendConfig

    def __init__(self, config: BlendConfig | None = None) -> None:
        super().__init__(config)
        from shoprec.models.registry import create_model  # the registry lists this class: import it when built

        self.parts = tuple(create_model(part.model, part.options) for part in self.config.parts)
        self.weight = self.config.weight

    def settle(self, objective: Callable[[float], float]) -> float | None:
        """Set the weight to the grid's best by ``objective`` (validation NDCG@10 of the blend at that weight; the
        first best on a tie) unless the config fixed it, and write it into the config, so that the manifest and
        result records say which weight was kept; returns the objective at that weight (None: nothing searched)."""
        self.n_items = self.parts[0].n_items
        if self.config.weight is not None:
            self.weight = self.config.weight
            return None
        values = []
        for weight in self.config.grid:
            self.weight = weight
            values.append(objective(weight))
        self.weight = self.config.grid[int(np.argmax(values))]
        self.config = self.config.model_copy(update={"weight": self.weight})
        return max(values)

    def score(self, histories: Sequences) -> np.ndarray:
        self._check_fitted()
        first, second = self.parts
        weight = self._weight()
        if weight == 1:
            return first.score(histories)
        if weight == 0:
            return second.score(histories)
        a, b = first.score(histories), second.score(histories)
        scorable = np.isfinite(a) & np.isfinite(b)
        blended = weight * _standardised(a, scorable) + (1 - weight) * _standardised(b, scorable)
        return np.where(scorable, blended, -np.inf).astype(np.float32)

    @property
    def uses_item_text(self) -> bool:
        return any(part.uses_item_text for part in self.parts)

    @property
    def history_window(self) -> int | None:
        windows = [part.history_window for part in self.parts]
        return None if None in windows else max(w for w in windows if w is not None)

    def save(self, directory: Path) -> None:
        super().save(directory)
        for index, part in enumerate(self.parts):
            part.save(directory / f"part{index}")

    @classmethod
    def load(cls, directory: Path) -> Self:
        blend = super().load(directory)
        blend.parts = tuple(type(part).load(directory / f"part{i}") for i, part in enumerate(blend.parts))
        return blend

    def _weight(self) -> float:
        if self.weight is None:
            raise RuntimeError("blend has no weight yet: fit it (settle) or set one in its config")
        return self.weight

    def _state(self) -> dict[str, np.ndarray]:
        return {"weight": np.array(self._weight())}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        self.weight = float(state["weight"])


def _standardised(scores: np.ndarray, scorable: np.ndarray) -> np.ndarray:
    """Each row minus its mean over the scorable items, over their standard deviation (1 for a constant row)."""
    values = np.where(scorable, scores, 0.0).astype(np.float64)
    counts = scorable.sum(axis=1, keepdims=True).clip(min=1)
    mean = values.sum(axis=1, keepdims=True) / counts
    spread = np.sqrt((np.where(scorable, values - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / counts)
    return (values - mean) / np.where(spread > 0, spread, 1.0)
