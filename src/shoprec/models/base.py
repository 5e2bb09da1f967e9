"""The one contract every recommender implements; everything above the model layer speaks only this."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from shoprec.config import Config
from shoprec.data.split import EvalSet
from shoprec.types import Sequences


@dataclass(frozen=True)
class TrainData:
    """Everything a model may learn from. ``validation`` is for early stopping only, never for fitting."""

    n_items: int  # vocabulary size including padding: the width of every score matrix
    sequences: Sequences
    validation: EvalSet | None = None
    # (n_items, d) L2-normalised item text vectors, row 0 (padding) zeros; None when the catalog has no text.
    # Models receive vectors as an array and never import an encoder.
    item_vectors: np.ndarray | None = None


class Recommender(ABC):
    """fit / score over all items / save / load.

    ``score`` takes histories (item indices, oldest first) rather than user ids, so a trained model can rank for
    users it has never seen and for histories that grew after training. It returns a (B, n_items) float32
    matrix; column 0 is padding and callers ignore it. An empty history must still get a sensible ranking.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[Config]]
    config_file: ClassVar[str] = "config.json"

    def __init__(self, config: Config | None = None) -> None:
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, self.config_class):
            raise TypeError(f"{self.name} expects {self.config_class.__name__}, got {type(self.config).__name__}")
        self.n_items = 0

    @abstractmethod
    def fit(self, data: TrainData) -> None: ...

    @abstractmethod
    def score(self, histories: Sequences) -> np.ndarray: ...

    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """Arrays that, with the config, restore the fitted model."""

    @abstractmethod
    def _restore(self, state: dict[str, np.ndarray]) -> None: ...

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        header: dict[str, Any] = {
            "model": self.name,
            "n_items": self.n_items,
            "config": self.config.model_dump(),
        }
        (directory / self.config_file).write_text(json.dumps(header, indent=2))
        state: dict[str, Any] = self._state()  # Any: numpy's stub checks **kwargs against its bool keyword
        np.savez_compressed(directory / "state.npz", **state)

    @classmethod
    def load(cls, directory: Path) -> Self:
        header = json.loads((directory / cls.config_file).read_text())
        if header["model"] != cls.name:
            raise ValueError(f"{directory} holds a {header['model']} model, not {cls.name}")
        model = cls(cls.config_class.model_validate(header["config"]))
        model.n_items = int(header["n_items"])
        with np.load(directory / "state.npz", allow_pickle=False) as state:
            model._restore(dict(state))
        return model

    def _check_fitted(self) -> None:
        if self.n_items == 0:
            raise RuntimeError(f"{self.name} is not fitted")


def item_popularity(sequences: Sequences, n_items: int) -> np.ndarray:
    """(n_items,) float32 training interaction counts: the ranking for a history a model knows nothing about."""
    return np.bincount(sequences.items, minlength=n_items).astype(np.float32)


def finish_scores(scores: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Rows the model left all-zero (empty history, or items it has no evidence on) get the popularity
    ranking instead of an arbitrary order; column 0 (padding) becomes -inf. Works in place.
    """
    blank = ~np.any(scores[:, 1:] != 0, axis=1)
    scores[blank] = popularity
    scores[:, 0] = -np.inf
    return scores


def keep_top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The ``k`` largest stored entries of each row (ties go to the lower column), with no loop over rows."""
    matrix = matrix.tocsr(copy=True)
    matrix.eliminate_zeros()
    matrix.sort_indices()
    lengths = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(matrix.shape[0]), lengths)
    order = np.lexsort((-matrix.data, rows))  # by row, then by value descending; stable, so by column on ties
    rank = np.arange(len(order)) - matrix.indptr[rows[order]]
    keep = np.sort(order[rank < k])  # back to CSR order
    indptr = np.concatenate([[0], np.cumsum(np.minimum(lengths, k))])
    return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)


def csr_state(name: str, matrix: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as plain arrays for ``_state`` (npz holds no sparse objects)."""
    return {
        f"{name}_data": matrix.data,
        f"{name}_indices": matrix.indices,
        f"{name}_indptr": matrix.indptr,
        f"{name}_shape": np.asarray(matrix.shape, dtype=np.int64),
    }


def csr_from_state(state: dict[str, np.ndarray], name: str) -> sp.csr_matrix:
    """Inverse of ``csr_state``."""
    rows, columns = (int(n) for n in state[f"{name}_shape"])
    arrays = (state[f"{name}_data"], state[f"{name}_indices"], state[f"{name}_indptr"])
    return sp.csr_matrix(arrays, shape=(rows, columns))
