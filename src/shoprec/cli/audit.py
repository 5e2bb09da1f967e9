"""`shoprec audit privacy MODEL_DIR`: how well the model's loss tells its training users from held-out ones."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from shoprec.cli.common import console, guarded, load_data
from shoprec.evaluation.membership import BOOTSTRAP, POSITIONS, audit_membership, held_out_tags
from shoprec.models.artifact import load_artifact

audit_app = typer.Typer(help="Audits of a trained model.", no_args_is_help=True)


@audit_app.command(name="privacy")
@guarded
def privacy(
    model_dir: Path = typer.Argument(..., help="A model directory trained with holdout_users > 0."),
    data: Path = typer.Option(..., help="The data the model was trained from (same pseudonym key)."),
    positions: int = typer.Option(POSITIONS, min=1, help="Latest training items per user whose loss is averaged."),
    bootstrap: int = typer.Option(BOOTSTRAP, min=10, help="Bootstrap resamples for the 95% interval."),
    seed: int = typer.Option(0, help="Seed of the bootstrap."),
    out: Path | None = typer.Option(None, help="Write the result as JSON."),
) -> None:
    """Membership inference (loss threshold): the AUC of each user's loss on their own sequence separating the
    users trained on from the held-out users named in MODEL_DIR, with a bootstrap interval. 0.5 is chance."""
    model, _, manifest = load_artifact(model_dir)
    held_out_tags(manifest)  # before the data is loaded: a model without held-out users fails at once
    dataset, _ = load_data(data)
    result = audit_membership(model, manifest, dataset, positions, bootstrap, seed)
    guarantee = "not DP" if manifest.privacy is None else f"DP epsilon {manifest.privacy.epsilon:.2f}"
    console.print(
        f"membership AUC {result.auc:.3f} (95% bootstrap {result.low:.3f}-{result.high:.3f}) over "
        f"{result.members:,} members and {result.non_members:,} held-out users; mean loss "
        f"{result.mean_loss_members:.3f} vs {result.mean_loss_non_members:.3f} ({guarantee})",
        markup=False,
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"model_dir": str(model_dir), **result.to_dict()}, indent=2) + "\n")
