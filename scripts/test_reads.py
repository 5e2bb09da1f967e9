"""How many times each data set's test split has been read, per configuration, from the test-read ledger.

.venv/bin/python scripts/test_reads.py [LEDGER]    # default: $SHOPREC_TEST_LEDGER, else runs/test_reads.jsonl
"""

from __future__ import annotations

import sys
from pathlib import Path

from shoprec.evaluation.ledger import Ledger
from shoprec.evaluation.report import ledger_table


def main(ledger: Ledger) -> None:
    rows = ledger.summary()
    print(f"{ledger.path}: {sum(reads for _, reads in rows)} test read(s)\n")
    if rows:
        print(ledger_table(rows))


if __name__ == "__main__":
    main(Ledger(Path(sys.argv[1])) if len(sys.argv) > 1 else Ledger.default())
