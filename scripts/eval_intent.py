"""Slot accuracy of the query rules alone on a labelled set written by scripts/build_intent_set.py.

.venv/bin/python scripts/eval_intent.py SET.jsonl [--mistakes N]    # per language; N wrong queries shown
"""

from __future__ import annotations

import sys
from pathlib import Path

from shoprec.llm.intent import parse
from shoprec.llm.intent_eval import evaluate, mistakes
from shoprec.llm.intent_set import read_jsonl
from shoprec.llm.intent_sources import load_sources


def main(path: Path, show: int) -> None:
    rows = read_jsonl(path)
    terms = {source.name: source.terms for source in load_sources(Path(__file__).resolve().parents[1])}
    for language in ("en", "zh"):
        subset = [row for row in rows if row.expected.language == language]
        if subset:
            print(evaluate(subset, parse, terms).table(f"{path.name} {language}") + "\n")
    shown = 0
    for row in rows:
        got = parse(row.query, terms[row.source])
        wrong = mistakes(row, got)
        if wrong and shown < show:
            shown += 1
            slots = ", ".join(f"{s}: {getattr(got, s)!r} want {getattr(row.expected, s)!r}" for s in wrong)
            print(f"{row.query!r} [{row.template}] {slots}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or len(args) not in (1, 3) or (len(args) == 3 and args[1] != "--mistakes"):
        sys.exit(__doc__)
    main(Path(args[0]), int(args[2]) if len(args) == 3 else 0)
