"""Model artifact directory: the fitted model, its item vocabulary and a manifest saying what made it."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shoprec import __version__
from shoprec.models.base import Recommender
from shoprec.models.registry import model_class
from shoprec.types import Vocabulary

MANIFEST = "manifest.json"
ITEMS = "items.json"
MODEL = "model"


@dataclass(frozen=True)
class Manifest:
    """What a reader of an artifact needs to trust it: model, config, which data (by hash), how well it did."""

    model: str
    options: dict[str, Any]
    data_name: str
    data_fingerprint: str  # hash of the exact training interactions and item vocabulary
    n_items: int
    metrics: dict[str, float]  # validation metrics of the kept model
    fit_seconds: float
    encoder: str | None = None  # the text encoder (name@version) whose vectors the model was fit on, if any
    shoprec_version: str = __version__
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def save_artifact(directory: Path, model: Recommender, items: Vocabulary, manifest: Manifest) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / MODEL)
    (directory / ITEMS).write_text(json.dumps(list(items.ids)))
    (directory / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2))


def load_artifact(directory: Path) -> tuple[Recommender, Vocabulary, Manifest]:
    """Load a model directory; a missing or foreign directory is a clear error, not a traceback."""
    if not (directory / MANIFEST).is_file():
        raise FileNotFoundError(f"{directory} is not a shoprec model directory (no {MANIFEST})")
    manifest = Manifest(**json.loads((directory / MANIFEST).read_text()))
    model = model_class(manifest.model).load(directory / MODEL)
    items = Vocabulary(tuple(json.loads((directory / ITEMS).read_text())))
    return model, items, manifest
