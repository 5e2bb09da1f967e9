"""Accuracy against diversity, calibration and tail exposure as one re-ranking knob moves, on the VALIDATION split.

    .venv/bin/python scripts/tradeoff.py --data data/amazon_beauty --model-dir runs/demo/sasrec \
        --knob diversity --values 0,0.1,0.2,0.3,0.5,0.7 [--out docs/results/tradeoff/beauty-diversity.json]

The model must have been trained on DATA (its vocabulary is DATA's), so leave-one-out's validation targets are the
ones it was selected on: knob values are chosen here, and the test split is never read. Each value ranks every
validation user through the ranking pipeline (the model's scorer, then the knob's stage: ``MMR`` for diversity,
``Calibration`` for calibration, ``TailExposure`` for tail_share, exactly as the API's knobs serve them) and the
evaluation protocol measures NDCG@10, HR@10, intra-list diversity and calibration KL over DATA's categories, and
the share of list slots given to tail items (the bottom half by training popularity).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from shoprec.cli.common import load_data
from shoprec.data.split import leave_one_out
from shoprec.evaluation import provenance
from shoprec.evaluation.protocol import evaluate
from shoprec.models.artifact import load_artifact
from shoprec.models.base import item_popularity
from shoprec.ranking.items import catalog_records, model_items
from shoprec.ranking.recommend import OfflineRanking, Ranker
from shoprec.ranking.rerank import MMR, Calibration, TailExposure
from shoprec.ranking.stages import ReRanker, model_scorer

STAGES: dict[str, Callable[[float], ReRanker]] = {
    "diversity": MMR,
    "calibration": Calibration,
    "tail_share": TailExposure,
}
COLUMNS = ("NDCG@10", "HR@10", "ILD@10", "CalibrationKL@10", "ExposureTail@10", "Coverage@10")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--knob", choices=sorted(STAGES), required=True)
    parser.add_argument("--values", default="0,0.1,0.2,0.3,0.5,0.7", help="comma-separated knob values in [0, 1]")
    parser.add_argument("--out", type=Path, help="write the rows and their provenance as JSON here")
    args = parser.parse_args()
    values = [float(value) for value in args.values.split(",")]
    dataset, _ = load_data(args.data)
    model, vocabulary, manifest = load_artifact(args.model_dir)
    if vocabulary.ids != dataset.items.ids:
        raise SystemExit(f"{args.model_dir} was not trained on {args.data}: its item vocabulary differs")
    categories = dataset.category_matrix()
    if categories is None:
        raise SystemExit(f"{args.data} has no item categories: diversity and calibration are measured over them")
    split = leave_one_out(dataset.sequences)
    items = model_items(model, vocabulary.ids, records=catalog_records(dataset, vocabulary.ids))
    popularity = item_popularity(split.train, dataset.items.size)
    rows = []
    print("| " + " | ".join([args.knob, *COLUMNS, "seconds"]) + " |", flush=True)
    for value in values:
        stage = STAGES[args.knob](value)
        ranking = OfflineRanking(Ranker(model_scorer(model), rerankers=(stage,)), items)
        started = time.perf_counter()
        result = evaluate(
            ranking,
            split.valid,
            popularity,
            ks=(10,),
            item_vectors=categories,
            item_categories=categories,
            group_gaps=False,
        )
        seconds = time.perf_counter() - started
        rows.append({args.knob: value, "seconds": round(seconds, 1), **{c: result.metrics[c] for c in COLUMNS}})
        print(
            "| " + " | ".join([f"{value:g}", *(f"{result.metrics[c]:.4f}" for c in COLUMNS), f"{seconds:.0f}"]) + " |",
            flush=True,
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "split": "validation (leave-one-out, full ranking, history excluded)",
            "data": dataset.name,
            "model": manifest.model,
            "options": manifest.options,
            "date": provenance.utc_now(),
            "commit": provenance.git_commit(),
            "machine": provenance.machine(),
            "rows": rows,
        }
        args.out.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
