"""A model directory round-trips its manifest, and a manifest that is not ours is a ValueError naming the problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contracts import TINY, TINY_ITEMS, histories
from shoprec.encoders.text import EncoderConfig
from shoprec.models.artifact import MANIFEST, Manifest, load_artifact, read_manifest, save_artifact
from shoprec.models.base import TrainData
from shoprec.models.content import Content
from shoprec.models.pop import Pop
from shoprec.types import Vocabulary

ITEMS = Vocabulary(("a", "b", "c", "d", "e"))


def manifest(**changes: object) -> Manifest:
    fields: dict[str, object] = {
        "model": "pop",
        "options": {},
        "run": {"model": "pop", "options": {}, "search": {}, "split": "leave_one_out"},
        "data_name": "tiny",
        "data_fingerprint": "f" * 64,
        "n_items": len(ITEMS),
        "metrics": {"NDCG@10": 0.5},
        "fit_seconds": 0.1,
        "encoder": EncoderConfig(name="e5", max_chars=64),
        "encoder_name": "multilingual-e5-small-q4@0.3.0",
    }
    return Manifest.model_validate(fields | changes)


SAVED = manifest()


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    pop = Pop()
    pop.fit(TrainData(n_items=TINY_ITEMS, sequences=TINY))
    save_artifact(tmp_path, pop, ITEMS, SAVED)
    return tmp_path


def test_the_manifest_round_trips_with_the_whole_encoder_config_and_the_run_config(saved: Path) -> None:
    model, items, loaded = load_artifact(saved)
    assert loaded == SAVED
    assert loaded.encoder == EncoderConfig(name="e5", max_chars=64)  # serving rebuilds the encoder from this
    assert loaded.run["split"] == "leave_one_out"
    assert items == ITEMS
    np.testing.assert_array_equal(model.score(histories([1])), Pop.load(saved / "model").score(histories([1])))


def rewrite(directory: Path, content: object) -> None:
    (directory / MANIFEST).write_text(content if isinstance(content, str) else json.dumps(content))


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ([1, 2], "JSON list"),
        ("{not json", "not JSON"),
        ({"format": 2, "hello": "world"}, "hello"),
        (json.loads(SAVED.model_dump_json()) | {"n_items": "many"}, "n_items"),
        (json.loads(SAVED.model_dump_json()) | {"encoder": {"name": "word2vec"}}, "encoder.name"),
        (json.loads(SAVED.model_dump_json()) | {"format": 3}, "format"),
    ],
)
def test_a_manifest_that_is_not_ours_is_a_value_error_naming_the_problem(
    saved: Path, content: object, named: str
) -> None:
    rewrite(saved, content)
    with pytest.raises(ValueError, match=named):
        load_artifact(saved)


def test_a_format_1_manifest_says_to_retrain(saved: Path) -> None:
    old = json.loads(SAVED.model_dump_json())
    for key in ("format", "run", "encoder_name"):
        del old[key]
    rewrite(saved, old | {"encoder": "all-minilm-l6-v2@0.1.0"})
    with pytest.raises(ValueError, match=r"format-1 manifest.*retrain"):
        read_manifest(saved)


def test_a_directory_without_a_manifest_is_not_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a shoprec model directory"):
        load_artifact(tmp_path)


def test_a_vocabulary_that_does_not_match_the_model_is_refused(saved: Path) -> None:
    (saved / "items.json").write_text(json.dumps(["a", "b"]))
    with pytest.raises(ValueError, match="inconsistent"):
        load_artifact(saved)


def test_a_text_model_without_its_encoder_config_is_refused(tmp_path: Path) -> None:
    vectors = np.eye(TINY_ITEMS, 4, k=-1, dtype=np.float32)  # row 0 (padding) zero
    content = Content()
    content.fit(TrainData(n_items=TINY_ITEMS, sequences=TINY, item_vectors=vectors))
    save_artifact(tmp_path, content, ITEMS, manifest(model="content", encoder=None, encoder_name=None))
    with pytest.raises(ValueError, match="names no encoder"):
        load_artifact(tmp_path)
