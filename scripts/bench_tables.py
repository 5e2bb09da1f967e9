"""Regenerate the benchmark tables of a document from the JSON records `shoprec bench --results DIR` wrote.

Every ``<!-- bench-results: DIR -->`` ... ``<!-- /bench-results -->`` block is rewritten from DIR/*.json (paths
relative to the working directory); the rest of the document is left as it is. `make bench` runs this last.

    .venv/bin/python scripts/bench_tables.py [docs/benchmarks.md]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from shoprec.evaluation.report import splice_bench_sections


def records(directory: str) -> list[dict[str, Any]]:
    files = sorted(Path(directory).glob("*.json"))
    if not files:
        raise SystemExit(f"no JSON record in {directory}: run `shoprec bench --results {directory}` first")
    return [json.loads(path.read_text()) for path in files]


def main(document: Path) -> None:
    document.write_text(splice_bench_sections(document.read_text(), records))
    print(f"regenerated the bench-results blocks of {document}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/benchmarks.md"))
