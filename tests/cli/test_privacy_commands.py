"""Forget, retrain and purge as an operator runs them, with the proof a data-protection officer would ask for."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shoprec.cli import app
from shoprec.models.artifact import load_artifact
from shoprec.privacy.erasure import FORGOTTEN, erasure_tag, trained_users
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.storage.store import Store, StoredEvent
from shoprec.types import EventType, Sequences

runner = CliRunner()
# A Transformer small enough to train thrice in seconds; its seed fixes initialisation, shuffling and negatives.
TINY = """model = "sasrec"
[options]
item_mode = "id"
dim = 16
layers = 1
heads = 1
max_len = 20
[options.train]
epochs = 2
batch_size = 128
eval_every = 2
seed = 7
threads = 1  # bitwise repeatable: with two threads, float sums may be split differently from run to run
"""


def invoke(*args: str | Path) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def scores(model_dir: Path) -> np.ndarray:
    """The model's scores for a fixed set of histories over the items every model here knows."""
    model, _, _ = load_artifact(model_dir)
    histories = Sequences.from_lists(np.arange(1, 4), [[1, 2, 3], [4, 5], [6]])
    return model.score(histories)


def test_forget_then_retrain_equals_never_having_held_the_user(
    beauty_dir: Path, tmp_path: Path, pseudonymize: Pseudonymizer
) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    store = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    lines = (beauty_dir / "sequences.txt").read_text().splitlines(keepends=True)
    forgotten = lines[0].split()[0]
    served = tmp_path / "models" / "served"
    invoke("train", "--data", beauty_dir, "--config", config, "--out", served, "--database-url", store)
    assert erasure_tag(pseudonymize(forgotten)) in trained_users(served)

    output = invoke("forget", "--user", forgotten, "--database-url", store, "--models", tmp_path / "models")
    assert "retrain needed" in output and (served / FORGOTTEN).is_file()
    retrained = tmp_path / "retrained"
    output = invoke("retrain", "--model-dir", served, "--data", beauty_dir, "--out", retrained, "--database-url", store)
    assert "left out 1 users" in output

    never = tmp_path / "never_held"
    shutil.copytree(beauty_dir, never)
    (never / "sequences.txt").write_text("".join(lines[1:]))
    absent = f"sqlite:///{tmp_path / 'no-store.sqlite3'}"
    invoke("train", "--data", never, "--config", config, "--out", tmp_path / "never", "--database-url", absent)

    assert np.array_equal(scores(retrained), scores(tmp_path / "never"))
    assert not np.array_equal(scores(served), scores(retrained)), "the user changed the model (else this is moot)"
    assert erasure_tag(pseudonymize(forgotten)) not in trained_users(retrained)
    assert not (retrained / FORGOTTEN).exists()


def test_consent_withdrawn_in_the_store_keeps_the_user_out_of_training(
    beauty_dir: Path, tmp_path: Path, pseudonymize: Pseudonymizer
) -> None:
    withdrawn = (beauty_dir / "sequences.txt").read_text().split(maxsplit=1)[0]
    url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    store = Store(url)
    store.set_consent(pseudonymize(withdrawn), False)
    store.close()
    out = tmp_path / "pop"
    output = invoke("train", "--data", beauty_dir, "--model", "pop", "--out", out, "--database-url", url)
    assert "left out 1 users" in output
    assert erasure_tag(pseudonymize(withdrawn)) not in trained_users(out) and len(trained_users(out)) > 1000


def test_store_purge_applies_the_retention_period(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    store = Store(url)
    now = time.time()
    store.add_events(
        [
            StoredEvent("a" * 32, "old", EventType.VIEW, now - 40 * 86_400),
            StoredEvent("a" * 32, "new", EventType.VIEW, now - 20 * 86_400),
        ]
    )
    store.close()
    assert "purged 1 events" in invoke("store", "purge", "--days", "30", "--database-url", url)
    store = Store(url)
    assert store.recent_items("a" * 32, None) == ["new"]
    store.close()


@pytest.mark.parametrize("args", [["forget"], ["store", "purge"], ["retrain", "--data", "x", "--out", "y"]])
def test_missing_arguments_are_usage_errors(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "Missing option" in result.output


def test_retrain_of_a_missing_model_dir_is_a_clear_error(beauty_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["retrain", "--model-dir", str(tmp_path / "nope"), "--data", str(beauty_dir), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "error" in result.output and "Traceback" not in result.output
