"""Bad input rows are reported by file and line and kept aside, never silently dropped."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path


class SchemaError(ValueError):
    """The input cannot be read at all (missing required column, unknown format): nothing is loaded."""


@dataclass(frozen=True)
class Reject:
    """One input row that was not loaded. ``line`` is 1-based in the source file (the header is line 1 in CSV)."""

    file: str
    line: int
    reason: str
    raw: str


@dataclass
class LoadReport:
    """Counts of what one load kept and what it set aside."""

    loaded: int = 0
    rejects: list[Reject] = field(default_factory=list)
    withheld_users: int = 0  # valid users left out: no consent to training, or forgotten

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    def reject(self, file: str | Path, line: int, reason: str, raw: str) -> None:
        self.rejects.append(Reject(str(file), line, reason, raw[:500]))

    def merge(self, other: LoadReport) -> None:
        self.loaded += other.loaded
        self.rejects.extend(other.rejects)
        self.withheld_users += other.withheld_users


def write_rejects(rejects: list[Reject], path: Path) -> None:
    """JSONL, one reject per line, so the rows can be fixed and loaded again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for reject in rejects:
            handle.write(json.dumps(asdict(reject), ensure_ascii=False) + "\n")
