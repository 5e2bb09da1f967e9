"""A saved model directory restores the same model, and run configs reject what they do not know."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from shoprec.data.dataset import Dataset
from shoprec.models.artifact import load_artifact, save_artifact
from shoprec.training.config import RunConfig
from shoprec.training.experiment import train_model
from shoprec.training.select import grid
from shoprec.types import Vocabulary


def test_artifact_round_trip_scores_identically(beauty: Dataset, tmp_path: Path) -> None:
    selection, manifest = train_model(beauty, RunConfig(model="itemknn"))
    save_artifact(tmp_path, selection.model, beauty.items, manifest)
    model, items, loaded = load_artifact(tmp_path)
    histories = beauty.sequences.take(np.arange(50))
    np.testing.assert_array_equal(model.score(histories), selection.model.score(histories))
    assert items == beauty.items
    assert loaded == manifest


def test_the_manifest_records_the_run_config_and_a_fingerprint_of_interactions_and_item_ids(beauty: Dataset) -> None:
    run = RunConfig(model="pop", search={}, split="leave_one_out")
    _, manifest = train_model(beauty, run)
    assert RunConfig.model_validate(manifest.run) == run
    assert manifest.encoder is None  # pop reads no item text
    assert manifest.data_fingerprint == beauty.fingerprint()
    renamed = dataclasses.replace(beauty, items=Vocabulary(tuple(f"x{item}" for item in beauty.items.ids)))
    assert train_model(renamed, run)[1].data_fingerprint != manifest.data_fingerprint  # same interactions


def test_search_keeps_the_best_validation_configuration(beauty: Dataset) -> None:
    run = RunConfig(model="itemknn", search={"neighbours": [1, 100]})
    selection, manifest = train_model(beauty, run)
    assert len(selection.trials) == 2
    best = max(selection.trials, key=lambda t: t.valid.metrics["NDCG@10"])
    assert selection.best is best
    assert manifest.options["neighbours"] == best.options["neighbours"]


def test_grid_is_the_full_product_and_one_point_when_empty() -> None:
    assert list(grid({})) == [{}]
    assert list(grid({"b": [1, 2], "a": ["x"]})) == [{"a": "x", "b": 1}, {"a": "x", "b": 2}]


def test_run_config_rejects_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text('model = "pop"\nmodle_typo = 1\n')
    with pytest.raises(ValidationError, match="modle_typo"):
        RunConfig.from_toml(path)
