"""Slot accuracy of a query parser on a labelled set: exact match per slot, overall, and whole queries.

Names compare case-insensitively (a parser may answer "nail polish" for the catalog's "Nail Polish"), exclusion
lists as sets, prices as numbers; ``attributes`` is not scored (the sets do not label it).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shoprec.llm.intent import Intent
from shoprec.llm.intent_set import Labelled
from shoprec.llm.terms import CatalogTerms

SLOTS = (
    "language",
    "category",
    "brand",
    "min_price",
    "max_price",
    "currency",
    "sort",
    "exclude_brands",
    "exclude_categories",
)
Parser = Callable[[str, CatalogTerms], Intent]


@dataclass(frozen=True)
class SlotAccuracy:
    n: int
    per_slot: dict[str, float]
    overall: float  # share of (query, slot) pairs right
    exact: float  # share of queries with every slot right

    def table(self, title: str) -> str:
        """A markdown table of the figures."""
        lines = [f"| {title} (n={self.n}) | accuracy |", "| --- | ---: |"]
        lines += [f"| {slot} | {value:.3f} |" for slot, value in self.per_slot.items()]
        lines += [f"| all slots | {self.overall:.3f} |", f"| whole query | {self.exact:.3f} |"]
        return "\n".join(lines)


def same(slot: str, got: Any, want: Any) -> bool:
    """Whether a parser's value for ``slot`` matches the label."""
    if isinstance(want, list):
        return {str(v).casefold() for v in got} == {str(v).casefold() for v in want}
    if isinstance(want, str) and isinstance(got, str):
        return got.casefold().strip() == want.casefold().strip()
    if isinstance(want, float) and isinstance(got, (int, float)):
        return abs(float(got) - want) < 1e-9
    return bool(got == want)


def sample(rows: Sequence[Labelled], per_language: int, seed: int) -> list[Labelled]:
    """``per_language`` rows of each language drawn with ``seed`` (all of a language that has fewer), in set order:
    a fixed subset for parsers too slow for the whole set."""
    chosen: set[int] = set()
    for language in ("en", "zh"):
        positions = [i for i, row in enumerate(rows) if row.expected.language == language]
        chosen.update(random.Random(f"{seed}/{language}").sample(positions, min(per_language, len(positions))))
    return [row for i, row in enumerate(rows) if i in chosen]


def mistakes(row: Labelled, got: Intent) -> list[str]:
    """The slots ``got`` has wrong for ``row``."""
    return [slot for slot in SLOTS if not same(slot, getattr(got, slot), getattr(row.expected, slot))]


def evaluate(rows: Sequence[Labelled], parser: Parser, terms: Mapping[str, CatalogTerms]) -> SlotAccuracy:
    """Run ``parser`` on each row's query with its source's catalog terms and score every slot."""
    return score(rows, [parser(row.query, terms[row.source]) for row in rows])


def score(rows: Sequence[Labelled], readings: Sequence[Intent]) -> SlotAccuracy:
    """Every slot of ``readings[i]`` against the label of ``rows[i]`` (readings made elsewhere, e.g. by an LLM)."""
    if not rows:
        raise ValueError("no labelled queries to evaluate")
    if len(readings) != len(rows):
        raise ValueError(f"{len(readings)} readings for {len(rows)} labelled queries")
    wrong = [mistakes(row, got) for row, got in zip(rows, readings, strict=True)]
    per_slot = {slot: 1.0 - sum(slot in w for w in wrong) / len(rows) for slot in SLOTS}
    overall = 1.0 - sum(map(len, wrong)) / (len(rows) * len(SLOTS))
    return SlotAccuracy(len(rows), per_slot, overall, sum(not w for w in wrong) / len(rows))
