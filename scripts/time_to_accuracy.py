"""Validation NDCG@10 against training time: how soon a config reaches an accuracy, drawn as a PNG.

    .venv/bin/python scripts/time_to_accuracy.py --data data/amazon_beauty \
        --out docs/results/time_to_accuracy/beauty-default.json --plot docs/time_to_accuracy.png

Without --config the run is what a new user gets from `shoprec train --data DATA --model sasrec`: the model's
default-config rule over the leave-one-out training split. Every epoch is validated (``eval_every = 1``, the one
change made to the run) so the curve has a point per epoch; early stopping, the schedule and the rest are the
run's own. Only the validation targets are read: no test split. The x axis is training time, validations
excluded (each validation ranks every validation user: a measurement, not part of training); the JSON also
keeps each point's wall time since the fit began, validations and set-up included.

--reference NAME=HR,NDCG (repeatable) draws a published accuracy as a horizontal line and reports the first
validation at or above it in both metrics. Those published figures are test figures: the curve is validation, so
where they cross is a guide to when to stop, not a result; a result takes one test read of a config whose
schedule ends there (`shoprec evaluate --config ...`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shoprec.cli.common import load_data
from shoprec.evaluation import provenance
from shoprec.models.base import TrainData
from shoprec.models.registry import create_model
from shoprec.training.config import RunConfig
from shoprec.training.experiment import make_split, text_vectors, with_data_defaults
from shoprec.training.fit import fit_model
from shoprec.training.loop import CurvePoint, FitReport


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--config", type=Path, help="a run config (no [search] grid); default: sasrec's rule")
    parser.add_argument("--reference", action="append", default=[], help="NAME=HR@10,NDCG@10 to mark")
    parser.add_argument("--out", type=Path, required=True, help="the curve and its provenance as JSON")
    parser.add_argument("--plot", type=Path, help="the curve as a PNG")
    args = parser.parse_args()
    references = dict(parse_reference(text) for text in args.reference)

    dataset, _ = load_data(args.data)
    run = RunConfig.from_toml(args.config) if args.config else RunConfig(model="sasrec", options_from_data=True)
    if run.search:
        sys.exit(f"{args.config} has a [search] grid: give one configuration")
    split = make_split(dataset, run)
    run = with_data_defaults(run, dataset, split.train)
    options = {**run.options, "train": {**run.options.get("train", {}), "eval_every": 1}}
    model = create_model(run.model, options)
    vectors = text_vectors(dataset, run, None)() if model.uses_item_text else None
    data = TrainData(dataset.items.size, split.train, split.valid, item_vectors=vectors)
    print(f"training {run.model} on {args.data} with {options}", flush=True)
    report = fit_model(model, data)
    if not isinstance(report, FitReport) or not report.curve:
        sys.exit(f"{run.model} has no training curve (a closed-form model, or no validation)")
    for point in report.curve:
        print(
            f"epoch {point.epoch}: {point.train_seconds:.1f} s training, HR@10 {point.hr:.4f}, NDCG@10 {point.ndcg:.4f}"
        )
    reached = {name: first_reaching(report.curve, *figures) for name, figures in references.items()}
    for name, point in reached.items():
        when = "never" if point is None else f"epoch {point.epoch}, after {point.train_seconds:.1f} s of training"
        print(f"validation first at or above {name} {references[name]}: {when}")

    record: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "data": str(args.data),
        "data_fingerprint": dataset.fingerprint(),
        "run": run.model_dump(mode="json"),
        "options": model.config.model_dump(mode="json"),
        "split": "validation (each user's second-to-last item); test split not read",
        "curve": [point._asdict() for point in report.curve],
        "best_epoch": report.best_epoch,
        "fit_seconds": round(report.seconds, 2),
        "references": {
            name: {
                "HR@10": hr,
                "NDCG@10": ndcg,
                "first_reached": None if reached[name] is None else reached[name]._asdict(),
            }
            for name, (hr, ndcg) in references.items()
        },
        "date": provenance.utc_now(),
        "commit": provenance.git_commit(),
        "machine": provenance.machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")
    if args.plot is not None:
        plot(report.curve, references, f"{dataset.name}: {run.model}", args.plot)
        print(f"wrote {args.plot}")


def parse_reference(text: str) -> tuple[str, tuple[float, float]]:
    name, _, figures = text.partition("=")
    hr, ndcg = (float(value) for value in figures.split(","))
    return name, (hr, ndcg)


def first_reaching(curve: tuple[CurvePoint, ...], hr: float, ndcg: float) -> CurvePoint | None:
    """The first validation at or above both figures, or None."""
    return next((point for point in curve if point.hr >= hr and point.ndcg >= ndcg), None)


def plot(curve: tuple[CurvePoint, ...], references: dict[str, tuple[float, float]], title: str, path: Path) -> None:
    from matplotlib.figure import Figure  # here, not at the top: only a run that draws pays for it

    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.add_subplot()
    axes.plot([p.train_seconds for p in curve], [p.ndcg for p in curve], marker="o", label="validation NDCG@10")
    for name, (_, ndcg) in references.items():
        axes.axhline(ndcg, linestyle="--", color="grey")
        axes.annotate(f"{name} (test) {ndcg:.4f}", (0, ndcg), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.set_xlabel("training time, s (validations excluded)")
    axes.set_ylabel("NDCG@10")
    axes.set_title(title)
    axes.set_xlim(left=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
