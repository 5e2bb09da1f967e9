"""Accuracy against diversity, calibration and tail exposure as the re-ranking knobs move, on the VALIDATION split.

    .venv/bin/python scripts/tradeoff.py --data data/amazon_beauty --model-dir runs/demo/sasrec \
        --grid diversity=0,0.3,0.5,0.7 [--grid tail_share=0,0.1] [--out docs/results/tradeoff/beauty-diversity.json]

Every combination of the grids' values is one row. The model must come from `shoprec train` on DATA, which fits
on every user's sequence but the last item and selects epochs on those last items: they are its validation
targets, never trained on, and knob values are chosen on them here. No test split is read (a model trained that
way has none on DATA). Each row ranks every validation user through the feed ranker the API serves
(``feed_ranker``: popularity correction, then calibration or MMR, then the tail floor), the knobs set on each
request exactly as the API's query parameters set them, and the evaluation protocol measures NDCG@10, HR@10,
intra-list diversity and calibration KL over DATA's categories (diversity over the items' text vectors where DATA
has no categories; MMR itself measures similarity over the search encoder's text vectors, as served), the share
of list slots given to tail items (the bottom half by training popularity), and across providers (brands, or
categories where there are none): the Gini of their exposure and the share of slots given to the small half of
them. Each row also records the NDCG@10 gap between the best- and worst-served user groups (history length;
gender, age and occupation where the data has them) with its bootstrap interval.

Once a setting is chosen on validation, `--confirm-config CONFIG --grid knob=value ...` (one value per knob) fits
CONFIG, the run config of the model the setting was chosen with, on the leave-one-out training split (its
validation for early stopping) and ranks the TEST users twice, without re-ranking and with the setting: one read
of the test split per configuration, each recorded in the ledger (runs/test_reads.jsonl).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

from shoprec.cli.common import load_data
from shoprec.data.split import hold_out_last
from shoprec.encoders.text import EncoderConfig, create_encoder
from shoprec.evaluation import provenance
from shoprec.evaluation.ledger import Ledger
from shoprec.evaluation.protocol import audit_of, evaluate
from shoprec.models.artifact import load_artifact
from shoprec.models.base import item_popularity
from shoprec.ranking.items import catalog_records, model_items
from shoprec.ranking.recommend import OfflineRanking, feed_ranker
from shoprec.training.config import RunConfig
from shoprec.training.experiment import make_split, text_vectors, with_data_defaults
from shoprec.training.select import fit_and_select

KNOBS = ("popularity_correction", "calibration", "diversity", "provider_share", "tail_share")
COLUMNS = (
    "NDCG@10",
    "HR@10",
    "ILD@10",
    "CalibrationKL@10",
    "ExposureTail@10",
    "ExposureSmallProviders@10",
    "ProviderGini@10",
    "Coverage@10",
)
GAP_METRIC = "NDCG@10"  # the group gaps recorded per row: best- against worst-served users, with the interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", type=Path, help="a `shoprec train` model of DATA: the grid on validation")
    source.add_argument(
        "--confirm-config",
        type=Path,
        help="fit this run config on the leave-one-out training split and read the TEST split once for the grid's "
        "one setting and once without re-ranking, each read recorded in the ledger",
    )
    parser.add_argument(
        "--grid",
        action="append",
        required=True,
        help=f"KNOB=V1,V2,... with KNOB one of {', '.join(KNOBS)} and values in [0, 1]; repeat for several knobs",
    )
    parser.add_argument(
        "--search-encoder",
        choices=("e5", "minilm", "hashing"),
        default="e5",
        help="the text vectors items get for search, and MMR for similarity, as `shoprec serve --search-encoder`",
    )
    parser.add_argument("--out", type=Path, help="write the rows and their provenance as JSON here")
    args = parser.parse_args()
    grid = dict(_axis(text) for text in args.grid)
    if max(grid.get("diversity", [0.0])) > 0 and max(grid.get("calibration", [0.0])) > 0:
        raise SystemExit("diversity and calibration are alternatives (the API refuses both): grid one of them")
    settings = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    dataset, _ = load_data(args.data)
    if args.confirm_config is not None:
        if len(settings) != 1:
            raise SystemExit("--confirm-config reads the test split for one setting: give one value per knob")
        settings = [dict.fromkeys(grid, 0.0), *settings]  # the plain model beside it
        run = RunConfig.from_toml(args.confirm_config)
        split = make_split(dataset, run)
        run = with_data_defaults(run, dataset, split.train)
        vectors = text_vectors(dataset, run, None)
        model = fit_and_select(run, split.train, split.valid, dataset.items.size, None, vectors).model
        vocabulary, trained_on, targets = dataset.items, split.train, split.test
        encoder_name = create_encoder(run.encoder).name
        described = {"model": run.model, "options": model.config.model_dump(mode="json"), "run": run.identity()}
        said = "TEST: each user's last item, read once per setting (full ranking, history excluded)"
    else:
        model, vocabulary, manifest = load_artifact(args.model_dir)
        if manifest.data_fingerprint != dataset.fingerprint():
            raise SystemExit(
                f"{args.model_dir} was not trained by `shoprec train` on {args.data}: its validation targets are "
                "unknown"
            )
        run = RunConfig(**manifest.run)
        trained_on, targets = hold_out_last(dataset.sequences)  # what `shoprec train` fitted on, and its validation
        encoder_name = manifest.encoder_name
        described = {"model": manifest.model, "options": manifest.options}
        said = "validation: each user's last item, held out of `shoprec train` (full ranking, history excluded)"
    audit = audit_of(dataset)
    by_categories = audit["item_vectors"] is not None
    if not by_categories:
        # Diversity over the text vectors the model's encoder gives the items (from the training cache): like
        # categories, independent of the model's own item space, and of the search encoder's, which MMR works in.
        audit["item_vectors"] = text_vectors(dataset, run, None)()
    search = RunConfig(model=run.model, encoder=EncoderConfig(name=args.search_encoder))
    items = model_items(
        model,
        vocabulary.ids,
        search=text_vectors(dataset, search, None)(),
        records=catalog_records(dataset, vocabulary.ids),
    )
    popularity = item_popularity(trained_on, dataset.items.size)
    rows = []
    ranker = feed_ranker(model)
    print("| " + " | ".join([*grid, *COLUMNS, f"widest {GAP_METRIC} gap", "seconds"]) + " |", flush=True)
    for knobs in settings:
        ranking = OfflineRanking(ranker, items, knobs)
        started = time.perf_counter()
        result = evaluate(ranking, targets, popularity, ks=(10,), **audit)
        seconds = time.perf_counter() - started
        reads = None
        if args.confirm_config is not None:
            reads = Ledger.default().record(
                data_name=dataset.name,
                data_fingerprint=dataset.fingerprint(),
                model=run.model,
                config={**run.identity(), "knobs": knobs},
                split=run.split,
                n_users=len(targets),
            )
        audited = [gap for gap in result.gaps if gap.metric == GAP_METRIC]
        widest = max(audited, key=lambda gap: gap.gap)  # history length is audited on every data set
        metrics = {c: result.metrics[c] for c in COLUMNS if c in result.metrics}
        gaps = {"GapNDCG@10": widest.gap, "gaps": [gap.to_dict() for gap in audited]}
        rows.append(
            {
                **knobs,
                "seconds": round(seconds, 1),
                **metrics,
                **gaps,
                **({} if reads is None else {"test_reads": reads}),
            }
        )
        gap_text = f"{widest.kind} {widest.gap:.4f} [{widest.low:.4f}, {widest.high:.4f}]"
        shown = [f"{metrics[c]:.4f}" if c in metrics else "-" for c in COLUMNS]
        cells = [*(f"{v:g}" for v in knobs.values()), *shown, gap_text, f"{seconds:.0f}"]
        print("| " + " | ".join(cells) + " |", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "split": said,
            "data": dataset.name,
            **described,
            "diversity_space": "categories" if by_categories else f"item text ({encoder_name})",
            "search_encoder": args.search_encoder,  # MMR's similarity where every item has text
            "date": provenance.utc_now(),
            "commit": provenance.git_commit(),
            "machine": provenance.machine(),
            "rows": rows,
        }
        args.out.write_text(json.dumps(record, indent=2))


def _axis(text: str) -> tuple[str, list[float]]:
    """``diversity=0,0.5`` -> ("diversity", [0.0, 0.5]), checked, so a typo fails before minutes of ranking."""
    name, _, values = text.partition("=")
    if name not in KNOBS:
        raise SystemExit(f"--grid {text}: the knob must be one of {', '.join(KNOBS)}")
    try:
        numbers = [float(value) for value in values.split(",")]
    except ValueError:
        raise SystemExit(f"--grid {text}: values must be numbers in [0, 1], comma-separated") from None
    if not numbers or not all(0.0 <= number <= 1.0 for number in numbers):
        raise SystemExit(f"--grid {text}: values must be in [0, 1]")
    return name, numbers


if __name__ == "__main__":
    main()
