"""Model directory: the fitted model, its item vocabulary and a manifest saying what made it.

Everything that reads a model (evaluation, serving, the CLI) reads it here, without the training layer. The
manifest carries what serving must rebuild exactly as training had it (the text encoder's whole config, so new
items get vectors made the same way) and what a reader needs to trust the figures (run config, data, metrics).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from shoprec import __version__
from shoprec.config import Config
from shoprec.encoders.text import EncoderConfig
from shoprec.models.base import Recommender
from shoprec.models.registry import model_class
from shoprec.privacy.dp import PrivacyGuarantee
from shoprec.privacy.erasure import write_trained_users
from shoprec.types import Vocabulary

MANIFEST = "manifest.json"
ITEMS = "items.json"
MODEL = "model"


class HeldOutUsers(Config):
    """Users kept out of training (``holdout_users`` of the run config), for the membership audit."""

    fraction: float
    seed: int
    tags: tuple[str, ...]  # their erasure tags (``shoprec.privacy.erasure.erasure_tag``), never pseudonyms


class Manifest(Config):
    """What a reader of a model directory needs to use and to trust it."""

    format: Literal[2] = 2  # format 1 named the encoder only and had no run config: such models must be retrained
    model: str  # registry name
    options: dict[str, Any]  # the kept model's whole config (after any search)
    run: dict[str, Any]  # the run config that made it (model, options, search grid, split...), as JSON
    data_name: str
    data_fingerprint: str  # hash of the data's interactions and item vocabulary (``Dataset.fingerprint``)
    n_items: int = Field(ge=0)  # items in the vocabulary, padding excluded
    metrics: dict[str, float]  # validation metrics of the kept model
    fit_seconds: float = Field(ge=0)
    # The text encoder the model's item vectors came from (None: the model reads no text); serving encodes new
    # items with exactly this config, ``max_chars`` included. ``encoder_name`` is its name@version.
    encoder: EncoderConfig | None = None
    encoder_name: str | None = None
    privacy: PrivacyGuarantee | None = None  # what DP-SGD spent (epsilon, delta, sample rate...); None: not DP
    held_out: HeldOutUsers | None = None  # None: every user of the data was trained on
    shoprec_version: str = __version__
    created_at: str = Field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def save_artifact(
    directory: Path, model: Recommender, items: Vocabulary, manifest: Manifest, users: Iterable[str] = ()
) -> None:
    """``users``: the pseudonyms the model was trained on, kept only as erasure tags, so that forgetting one of
    them flags this directory for retraining."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / MODEL)
    (directory / ITEMS).write_text(json.dumps(list(items.ids)))
    write_trained_users(directory, users)
    (directory / MANIFEST).write_text(manifest.model_dump_json(indent=2))


def load_artifact(directory: Path) -> tuple[Recommender, Vocabulary, Manifest]:
    """Load a model directory; a missing or foreign directory is a clear error, not a traceback."""
    manifest = read_manifest(directory)
    model = model_class(manifest.model).load(directory / MODEL)
    items = Vocabulary(tuple(json.loads((directory / ITEMS).read_text())))
    if not model.n_items == items.size == manifest.n_items + 1:
        raise ValueError(
            f"{directory} is inconsistent: {manifest.n_items} items in the manifest, {len(items)} in {ITEMS}, "
            f"{model.n_items - 1} in the model"
        )
    if model.uses_item_text and manifest.encoder is None:
        raise ValueError(
            f"{directory / MANIFEST} names no encoder, but the {manifest.model} model reads item text: new items "
            "could not be encoded as training encoded its items"
        )
    return model, items, manifest


def read_manifest(directory: Path) -> Manifest:
    """The manifest of ``directory``. FileNotFoundError without one; ValueError naming the problem for one that
    is not ours (not a JSON object, unknown keys, wrong types) or is of an older format."""
    path = directory / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a shoprec model directory (no {MANIFEST})")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} holds a JSON {type(raw).__name__}, not a shoprec manifest (a JSON object)")
    if "format" not in raw and "model" in raw:
        raise ValueError(
            f"{path} is a format-1 manifest (shoprec {raw.get('shoprec_version', '?')}), which lacks the encoder "
            f"and run config serving needs; retrain the model with `shoprec train`"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'manifest'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise ValueError(f"{path} is not a shoprec manifest: {problems}") from None
