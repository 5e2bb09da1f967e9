"""Why our Popularity figure on Beauty sits below the S3Rec paper's PopRec (.0152 / .0068 / .0217).

Runs the shared full-ranking evaluation (test split, seen items excluded) with popularity counted from three
sources. Only the first two are legitimate at test time; the third counts the test interactions themselves.
Each of the three reads the test split, so each is recorded in the test-read ledger.

    .venv/bin/python scripts/pop_band_check.py [data/amazon_beauty]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from shoprec.data.benchmark import read_benchmark
from shoprec.data.split import leave_one_out
from shoprec.evaluation.ledger import Ledger
from shoprec.evaluation.protocol import evaluate
from shoprec.models.base import item_popularity
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.types import Sequences


class FixedPopularity:
    """Scores every history with one fixed count vector."""

    def __init__(self, counts: np.ndarray) -> None:
        self.counts = counts

    def score(self, histories: Sequences) -> np.ndarray:
        return np.tile(self.counts, (len(histories), 1))


def main(folder: Path) -> None:
    dataset, _ = read_benchmark(folder, Pseudonymizer.from_environment())
    split = leave_one_out(dataset.sequences)
    size = dataset.items.size
    sources = {
        "train only (what `shoprec bench` reports)": split.train,
        "train + validation items (all data seen before the test item)": split.test.histories,
        "all interactions, test items included (leaks the targets)": dataset.sequences,
    }
    train_counts = item_popularity(split.train, size)
    ledger = Ledger.default()
    print("| popularity counted over | HR@10 | NDCG@10 | HR@20 |\n|---|---:|---:|---:|")
    for label, sequences in sources.items():
        result = evaluate(FixedPopularity(item_popularity(sequences, size)), split.test, train_counts)
        ledger.record(
            data_name=dataset.name,
            data_fingerprint=dataset.fingerprint(),
            model="pop_band_check",
            config={"script": "scripts/pop_band_check.py", "popularity": label},
            split="leave_one_out",
            n_users=len(split.test),
        )
        m = result.metrics
        print(f"| {label} | {m['HR@10']:.4f} | {m['NDCG@10']:.4f} | {m['HR@20']:.4f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "data/amazon_beauty"))
