"""The test-read ledger: one JSON line per read of a data set's test split.

Every look at test targets is a chance to tune on them; a published figure is honest only when it can say how
often its test split was read. ``shoprec.training.experiment.run_protocol`` and ``shoprec evaluate --model-dir``
record here; validation (``tune``, model selection, early stopping) never does.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shoprec.evaluation.provenance import git_commit, utc_now

LEDGER_ENV = "SHOPREC_TEST_LEDGER"
DEFAULT_PATH = Path("runs/test_reads.jsonl")


def config_key(config: dict[str, Any]) -> str:
    """Short hash of a config's canonical JSON: reads of the same configuration share it."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class LedgerEntry:
    """One read of a test split: which data (by content hash), which configuration, which split, when."""

    data_name: str
    data_fingerprint: str
    model: str
    config_key: str
    config: dict[str, Any]
    split: str
    n_users: int
    time: str
    git_commit: str | None


class Ledger:
    """An append-only JSON-lines file; a line is written whole in one ``write`` so processes can share it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def default(cls) -> Ledger:
        """``$SHOPREC_TEST_LEDGER``, else ``runs/test_reads.jsonl`` under the working directory."""
        return cls(Path(os.environ.get(LEDGER_ENV) or DEFAULT_PATH))

    def record(
        self, *, data_name: str, data_fingerprint: str, model: str, config: dict[str, Any], split: str, n_users: int
    ) -> int:
        """Append one read; returns how many reads of this (data, configuration) the ledger now holds."""
        entry = LedgerEntry(
            data_name=data_name,
            data_fingerprint=data_fingerprint,
            model=model,
            config_key=config_key(config),
            config=config,
            split=split,
            n_users=n_users,
            time=utc_now(),
            git_commit=git_commit(),
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(entry), default=str) + "\n")
        return self.count(data_fingerprint, entry.config_key)

    def entries(self) -> list[LedgerEntry]:
        if not self.path.is_file():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [LedgerEntry(**json.loads(line)) for line in lines if line.strip()]

    def count(self, data_fingerprint: str, key: str) -> int:
        return sum(e.data_fingerprint == data_fingerprint and e.config_key == key for e in self.entries())

    def summary(self) -> list[tuple[LedgerEntry, int]]:
        """One row per (data, configuration), in order of first read: its latest read and how many there were."""
        entries = self.entries()
        reads = Counter((e.data_fingerprint, e.config_key) for e in entries)
        latest = {(e.data_fingerprint, e.config_key): e for e in entries}
        return [(entry, reads[group]) for group, entry in latest.items()]
