"""The one contract every recommender implements; everything above the model layer speaks only this."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from shoprec.config import Config
from shoprec.data.split import EvalSet
from shoprec.types import Sequences


@dataclass(frozen=True)
class TrainData:
    """Everything a model may learn from. ``validation`` is for early stopping only, never for fitting."""

    n_items: int  # vocabulary size including padding: the width of every score matrix
    sequences: Sequences
    validation: EvalSet | None = None


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
        header: dict[str, Any] = {"model": self.name, "n_items": self.n_items, "config": self.config.model_dump()}
        (directory / self.config_file).write_text(json.dumps(header, indent=2))
        np.savez_compressed(directory / "state.npz", **self._state())

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
