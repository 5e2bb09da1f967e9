"""`shoprec audit privacy`: the membership audit of a model directory, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from shoprec.cli.audit import audit_app
from shoprec.data.dataset import Dataset
from shoprec.models.artifact import save_artifact
from shoprec.training.config import RunConfig
from shoprec.training.experiment import train_model

app = typer.Typer()
app.add_typer(audit_app, name="audit")
runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_a_model_dir_without_held_out_users_is_a_clear_error(trained: Path, beauty_dir: Path) -> None:
    code, output = invoke("audit", "privacy", trained, "--data", beauty_dir)
    assert code == 2
    assert "names no held-out users" in output and "holdout_users" in output
    assert "Traceback" not in output


def test_a_missing_model_dir_is_a_clear_error(tmp_path: Path, beauty_dir: Path) -> None:
    code, output = invoke("audit", "privacy", tmp_path / "nothing", "--data", beauty_dir)
    assert code == 2 and "not a shoprec model directory" in output


def test_the_audit_reports_the_auc_over_members_and_held_out_users(
    beauty: Dataset, beauty_dir: Path, tmp_path: Path
) -> None:
    run = RunConfig.model_validate({"model": "itemknn", "holdout_users": 0.2, "holdout_seed": 3})
    selection, manifest = train_model(beauty, run)
    save_artifact(tmp_path / "model", selection.model, beauty.items, manifest)
    out = tmp_path / "audit.json"
    code, output = invoke(
        "audit", "privacy", tmp_path / "model", "--data", beauty_dir, "--bootstrap", "50", "--out", out
    )
    assert code == 0, output
    result = json.loads(out.read_text())
    assert manifest.held_out is not None
    assert result["non_members"] <= len(manifest.held_out.tags)
    assert result["members"] + result["non_members"] > 0.9 * beauty.n_users  # users with 2+ items
    assert result["low"] <= result["auc"] <= result["high"]
    assert "membership AUC" in output
