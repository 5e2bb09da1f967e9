"""The published benchmark blocks: generated from JSON records, spliced between markers, nothing else touched."""

from __future__ import annotations

from typing import Any

import pytest

from shoprec.evaluation.protocol import EvalResult
from shoprec.evaluation.report import bench_section, splice_bench_sections


def record(name: str, date: str, ndcg: float, load: float, search: dict[str, list[Any]]) -> dict[str, Any]:
    test = EvalResult(
        metrics={
            metric: ndcg
            for metric in ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR@10", "Coverage@10", "Gini@10")
        },
        n_users=1234,
        n_repeat_targets=3,
    )
    return {
        "name": name,
        "config": {"model": name, "search": search},
        "command": "shoprec bench --data data/x --models pop,itemknn",
        "date": date,
        "git_commit": "0123456789abcdef0123",
        "machine": {
            "cpu": "Test CPU",
            "cores": 2,
            "memory_gib": 24.0,
            "load_average": [load, 0.0, 0.0],
            "python": "3.11.7",
            "packages": {"torch": "2.13.0", "implicit": None},
        },
        "wall_seconds": 61.0,
        "test_reads": 2,
        "result": {
            "options": {"neighbours": 100, "shrink": 50.0},
            "test": test.to_dict(),
            "fit_seconds": 0.25,
            "total_seconds": 12.5,
            "peak_rss_mb": 470.4,
        },
    }


RECORDS = [
    record("itemknn", "2026-11-29T10:01:00Z", 0.5, 1.7, {"neighbours": [50, 100], "shrink": [10.0, 50.0]}),
    record("pop", "2026-11-29T10:00:00Z", 0.25, 0.1, {}),
]


def test_bench_section_rows_in_run_order_with_costs_reads_and_chosen_options() -> None:
    lines = bench_section(RECORDS).splitlines()
    assert lines[0].startswith("`shoprec bench --data data/x --models pop,itemknn`: run 2026-11-29T10:00:00Z")
    assert "commit `0123456789ab`" in lines[0] and "Test CPU (2 cores, 24.0 GiB)" in lines[0]
    assert "torch 2.13.0" in lines[0] and "implicit" not in lines[0]
    assert "cores NOT quiet (1-min load average 0.10-1.70 at the starts)" in lines[0]
    assert "Wall time for all 2: 2 min 2 s." in lines[0]
    assert lines[4].startswith("| pop | 1,234 | 0.2500 |") and lines[5].startswith("| itemknn | 1,234 | 0.5000 |")
    assert lines[7] == "| model | fit s | total s | wall s | peak MB | test reads | repeat targets | selected options |"
    assert lines[9] == "| pop | 0.2 | 12.5 | 61.0 | 470 | 2 | 3 | — |"
    assert lines[10] == "| itemknn | 0.2 | 12.5 | 61.0 | 470 | 2 | 3 | neighbours 100, shrink 50 |"


def test_splice_rewrites_only_the_marked_blocks() -> None:
    document = (
        "# Title\nhand-written\n<!-- bench-results: docs/results/x -->\nstale table\n<!-- /bench-results -->\n"
        "more prose\n"
    )
    asked: list[str] = []

    def records_of(directory: str) -> list[dict[str, Any]]:
        asked.append(directory)
        return RECORDS

    spliced = splice_bench_sections(document, records_of)
    assert asked == ["docs/results/x"]
    assert spliced.startswith("# Title\nhand-written\n<!-- bench-results: docs/results/x -->\nGenerated from")
    assert "stale table" not in spliced and bench_section(RECORDS) in spliced
    assert spliced.endswith("<!-- /bench-results -->\nmore prose\n")
    assert splice_bench_sections(spliced, records_of) == spliced  # regenerating changes nothing
    with pytest.raises(ValueError, match="bench-results"):
        splice_bench_sections("no markers here", records_of)
