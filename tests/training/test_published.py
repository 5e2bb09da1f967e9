"""The published benchmark tables are what the committed JSON records say, and those records are what the frozen
configs and `make bench` produce: no hand-edited figure, no drifted config."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shoprec.evaluation.report import BENCH_SECTION, splice_bench_sections
from shoprec.training.config import RunConfig

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "benchmarks.md"


def records(directory: str) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted((REPO / directory).glob("*.json"))]


PUBLISHED = [match.group(2) for match in BENCH_SECTION.finditer(DOC.read_text())]


def test_every_generated_block_matches_its_committed_records() -> None:
    document = DOC.read_text()
    assert splice_bench_sections(document, records) == document, "run scripts/bench_tables.py docs/benchmarks.md"


@pytest.mark.parametrize("directory", PUBLISHED)
def test_each_record_was_made_by_the_committed_config_on_committed_code(directory: str) -> None:
    found = records(directory)
    assert found, f"{directory} holds no JSON record"
    for record in found:
        run = RunConfig.from_toml(REPO / record["config_path"])
        assert record["config"] == run.identity(), f"{record['config_path']} changed since {directory} was run"
        assert not str(record["git_commit"]).endswith("-dirty"), "published from uncommitted code"
        assert record["test_reads"] >= 1 and record["result"]["test"]["n_users"] > 0


def test_make_bench_writes_exactly_the_classic_blocks() -> None:
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile[makefile.index("\nbench:") : makefile.index("\nbench-movielens:")]
    written = re.findall(r"--results (\S+)", recipe)
    assert written == ["docs/results/amazon_beauty", "docs/results/amazon_scientific"]
    assert set(written) <= set(PUBLISHED) and "scripts/bench_tables.py docs/benchmarks.md" in recipe
    for directory in written:
        names = re.search(rf"--models (\S+) --results {directory}", recipe)
        assert names is not None
        assert sorted(names.group(1).split(",")) == sorted(r["name"] for r in records(directory))
