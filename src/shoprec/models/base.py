"""The one contract every recommender implements; everything above the model layer speaks only this."""

from __future__ import annotations

import contextlib
import json
import operator
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import Field

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
    # True under differentially private training: the model may learn from the data only through the noised
    # gradients, so it keeps nothing else computed from it (interaction counts, which items were trained).
    private: bool = False


@dataclass(frozen=True)
class DataShape:
    """What a default-config rule may read of the training data: sizes, never an outcome."""

    n_users: int
    n_items: int  # real items, padding excluded
    n_interactions: int
    long_history: int  # the 90th percentile of history length
    has_text: bool  # the catalog has item text to encode

    @classmethod
    def of(cls, sequences: Sequences, n_items: int, has_text: bool) -> DataShape:
        lengths = np.diff(sequences.indptr)
        long_history = int(np.percentile(lengths, 90)) if len(lengths) else 0
        return cls(len(sequences), n_items - 1, sequences.n_interactions, long_history, has_text)


class Recommender(ABC):
    """score over all items / save / load; how a model is fit is one of two kinds below (``ClosedFormRecommender``,
    ``TrainableRecommender``), and ``shoprec.training.fit.fit_model`` fits either.

    ``score`` takes histories (item indices, oldest first) rather than user ids, so a trained model can rank for
    users it has never seen and for histories that grew after training. It returns a (B, n_items) float32
    matrix; column 0 is padding and callers ignore it. An empty history must still get a sensible ranking.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[Config]]
    config_file: ClassVar[str] = "config.json"
    personalised: ClassVar[bool] = True  # False: the same ranking for every history (a list to label "popular")

    def __init__(self, config: Config | None = None) -> None:
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, self.config_class):
            raise TypeError(f"{self.name} expects {self.config_class.__name__}, got {type(self.config).__name__}")
        self.n_items = 0

    @classmethod
    def options_for(cls, shape: DataShape) -> dict[str, Any]:
        """Options picked from the data's shape when the user gives no config; the config class's defaults here."""
        return {}

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
        if not isinstance(header, dict) or not {"model", "n_items", "config"} <= header.keys():
            raise ValueError(f"{directory / cls.config_file} is not a saved model header (model, n_items, config)")
        if header["model"] != cls.name:
            raise ValueError(f"{directory} holds a {header['model']} model, not {cls.name}")
        model = cls(cls.config_class.model_validate(header["config"]))
        model.n_items = int(header["n_items"])
        with np.load(directory / "state.npz", allow_pickle=False) as state:
            model._restore(dict(state))
        return model

    @property
    def history_window(self) -> int | None:
        """How many of a history's latest items ``score`` reads; None: all of them. An explanation covers these."""
        return None

    @property
    def uses_item_text(self) -> bool:
        """Whether fitting wants ``TrainData.item_vectors``; training encodes the catalog only for such models."""
        return False

    def _check_fitted(self) -> None:
        if self.n_items == 0:
            raise RuntimeError(f"{self.name} is not fitted")


class ClosedFormRecommender(Recommender):
    """A model that fits itself from the data in one call (counts, similarities, least squares)."""

    @abstractmethod
    def fit(self, data: TrainData) -> None: ...


class EmbeddingModel(ABC):
    """A recommender whose score is a user vector · item vectors. Serving relies on the two halves apart: items
    added to the catalog after training join the table from their text alone, a history that holds such items
    still gets a vector, and item-item similarity in the model's own space explains and finds similar items.
    """

    @property
    @abstractmethod
    def popularity(self) -> np.ndarray:
        """(n_items,) training interaction counts: the ranking for a history the model knows nothing about."""

    @abstractmethod
    def item_table(self, new_text: np.ndarray | None = None) -> np.ndarray:
        """(n_items + m, D) float32: each known item's vector (row 0 padding, zero), then one row per new item
        made from its (m, T) text vector. Raises ValueError when the model cannot place items by text."""

    @abstractmethod
    def user_vectors(self, histories: Sequences, table: np.ndarray) -> np.ndarray:
        """(B, D) float32: each history read through ``table`` (from ``item_table``), so it may hold new items'
        indices; an empty history gives a zero row."""


class TrainerConfig(Config):
    """How a trainable model is optimised. It sits in the model's config (models cannot import the training
    layer), and only ``shoprec.training.loop.Trainer`` reads it.
    """

    epochs: int = Field(default=200, ge=1)  # upper bound, and the length of the lr schedule
    batch_size: int = Field(default=128, ge=1)  # training sequences per step
    lr: float = Field(default=1e-3, gt=0)  # peak learning rate, reached at the end of warm-up
    weight_decay: float = Field(default=0.0, ge=0)  # AdamW; never on embeddings, LayerNorm or biases
    warmup_steps: int = Field(default=100, ge=0)  # linear rise from 0 to lr
    decay: Literal["cosine", "linear"] = "cosine"  # after warm-up, down to 0 at the last step of ``epochs``
    clip_norm: float | None = Field(default=1.0, gt=0)  # cap on the global gradient L2 norm; None = no clipping
    patience: int = Field(default=5, ge=1)  # validations without a better NDCG@10 before training stops
    eval_every: int = Field(default=1, ge=1)  # epochs between validations
    seed: int = 0  # initial weights, dropout, shuffling and sampled negatives
    threads: int | None = Field(default=None, ge=1)  # torch intra-op threads while training; None = every core
    device: str = "cpu"  # torch device to train on, e.g. "cuda:0"; the fitted model scores there, a loaded one on CPU
    tensorboard: str | None = None  # log directory for TensorBoard scalars; None = no logging


BatchT = TypeVar("BatchT")


class TrainableRecommender(Recommender, Generic[BatchT]):
    """A model fit by gradient descent: the model says what to learn (network, batches, loss), the one Trainer
    (``shoprec.training.loop``) says how (device, wrappers, optimiser, schedule, clipping, early stopping, RNG).
    """

    @property
    @abstractmethod
    def trainer_config(self) -> TrainerConfig: ...

    @abstractmethod
    def build(self, data: TrainData) -> torch.nn.Module:
        """A freshly initialised network for this vocabulary (and text vectors); the model scores with it."""

    @abstractmethod
    def batches(self, sequences: Sequences, batch_size: int, generator: torch.Generator) -> list[BatchT]:
        """One epoch of training batches, shuffled with ``generator``; a list, so the schedule knows its length."""

    @abstractmethod
    def loss(self, network: torch.nn.Module, batch: BatchT, generator: torch.Generator) -> torch.Tensor:
        """Scalar training loss of one batch, computed only by calling ``network``: the module the Trainer holds,
        which may wrap the built one (DDP, Opacus) and must not be bypassed. Any sampling draws from ``generator``.
        """

    def sample_losses(self, network: torch.nn.Module, batch: BatchT, generator: torch.Generator) -> torch.Tensor:
        """(B,) one loss per row (per user) of the batch, each a function of its own row only: what DP-SGD clips
        per example. Called like ``loss``; a model that cannot separate its loss by row cannot be trained with DP.
        """
        raise NotImplementedError(f"{self.name} has no per-example loss: it cannot be trained with DP-SGD")


_TRAINING = operator.attrgetter("training")
_SUBMODULES: weakref.WeakKeyDictionary[torch.nn.Module, tuple[torch.nn.Module, ...]] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def evaluating(network: torch.nn.Module) -> Iterator[None]:
    """Run ``network`` for inference: eval mode (no dropout) under ``torch.inference_mode``, then every submodule
    back in the mode it was in, so a caller mid-training (validation) finds its module as it left it. Serving checks
    a network's submodules from a list made once (walking SASRec's 33 took ~19 us, a fifth of a served feed's model
    time); from train mode, which costs ~60 us each way anyway, they are walked afresh, so a network whose modules
    were replaced since (a privacy wrapper's layers) is restored exactly."""
    modules = _SUBMODULES.get(network)
    if modules is None or network.training:
        modules = _SUBMODULES[network] = tuple(network.modules())
    modes = list(map(_TRAINING, modules))
    switch = any(modes)
    if switch:
        network.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        if switch:
            for module, training in zip(modules, modes, strict=True):
                module.training = training


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
