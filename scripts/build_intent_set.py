"""Write the labelled query sets for query understanding (dev and test, disjoint phrasings and items) as JSONL.

.venv/bin/python scripts/build_intent_set.py OUT_DIR [SEED]    # OUT_DIR/dev.jsonl, OUT_DIR/test.jsonl

Reads data/amazon_beauty, data/amazon_scientific and ../shared/data/{rees46_sample,zh_product_titles}.
"""

from __future__ import annotations

import sys
from pathlib import Path

from shoprec.llm.intent_set import build_intent_set, write_jsonl
from shoprec.llm.intent_sources import load_sources

PER_LANGUAGE = 400


def main(out: Path, seed: int) -> None:
    sources = load_sources(Path(__file__).resolve().parents[1])
    for split in ("dev", "test"):
        rows = build_intent_set(sources, split, PER_LANGUAGE, seed)
        write_jsonl(rows, out / f"{split}.jsonl")
        print(f"{out / f'{split}.jsonl'}: {len(rows)} queries")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) == 3 else 0)
