"""Markdown tables of evaluation results, shared by `shoprec bench`, `shoprec evaluate` and docs/benchmarks.md.

The benchmark tables of docs/benchmarks.md are generated here from the JSON records `shoprec bench --results`
writes (``bench_section``), between marker comments that ``splice_bench_sections`` rewrites: never by hand.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from shoprec.evaluation.ledger import LedgerEntry
from shoprec.evaluation.protocol import EvalResult

HEADLINE = ["HR@5", "NDCG@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR@10", "Coverage@10", "Gini@10"]
# <!-- bench-results: docs/results/amazon_beauty --> ...generated... <!-- /bench-results -->
BENCH_SECTION = re.compile(r"(<!-- bench-results: (\S+) -->\n).*?(<!-- /bench-results -->)", re.DOTALL)
QUIET_LOAD = 0.5  # a 1-minute load average below this at every start counts as quiet cores


def markdown_table(rows: list[tuple[str, EvalResult]], columns: list[str]) -> str:
    """One row per model, one column per metric name, values to 4 decimals.

    A column no result has is an error naming the available ones, so a typo never prints an empty table.
    """
    for _, result in rows:
        missing = [column for column in columns if column not in result.metrics]
        if missing:
            raise ValueError(f"unknown metric(s) {missing}; available: {', '.join(result.metrics)}")
    lines = [
        _row(["model", "users", *columns]),
        _row(["---", "---:", *["---:"] * len(columns)]),
    ]
    lines += [
        _row([name, f"{result.n_users:,}", *[f"{result.metrics[c]:.4f}" for c in columns]]) for name, result in rows
    ]
    return "\n".join(lines)


def slices_table(result: EvalResult) -> str:
    """One row per slice (history length buckets, head/tail targets) with its user count and metrics."""
    names = list(result.slices[0].metrics) if result.slices else []
    lines = [
        _row(["slice", "group", "users", *names]),
        _row(["---", "---", "---:", *["---:"] * len(names)]),
    ]
    lines += [_row([s.kind, s.name, f"{s.n_users:,}", *[f"{s.metrics[n]:.4f}" for n in names]]) for s in result.slices]
    return "\n".join(lines)


def gaps_table(result: EvalResult) -> str:
    """The best- against the worst-served user group per metric, with the gap's bootstrap interval: a gap whose
    interval holds 0 is marked as noise."""
    lines = [
        _row(["groups", "metric", "best", "worst", "gap", "interval", "beyond noise"]),
        _row(["---", "---", "---", "---", "---:", "---", "---"]),
    ]
    lines += [
        _row(
            [
                g.kind,
                g.metric,
                f"{g.best} ({g.best_mean:.4f})",
                f"{g.worst} ({g.worst_mean:.4f})",
                f"{g.gap:.4f}",
                f"{g.confidence:.0%}: {g.low:.4f} to {g.high:.4f}",
                "yes" if g.significant else "no",
            ]
        )
        for g in result.gaps
    ]
    return "\n".join(lines)


def ledger_table(rows: list[tuple[LedgerEntry, int]]) -> str:
    """One row per (data, configuration) of the test-read ledger (``Ledger.summary``): how often it was read."""
    lines = [
        _row(["data", "fingerprint", "model", "split", "config", "reads", "last read"]),
        _row(["---", "---", "---", "---", "---", "---:", "---"]),
    ]
    lines += [
        _row([e.data_name, e.data_fingerprint[:12], e.model, e.split, e.config_key, str(reads), e.time])
        for e, reads in rows
    ]
    return "\n".join(lines)


def bench_section(records: list[dict[str, Any]]) -> str:
    """The published block for one dataset: provenance, the test metrics table and the cost table.

    ``records`` are `shoprec bench --results` JSON records; rows come in the order they were run.
    """
    if not records:
        raise ValueError("no benchmark records to render")
    records = sorted(records, key=lambda r: (r["date"], r["name"]))
    metrics = markdown_table([(r["name"], EvalResult.from_dict(r["result"]["test"])) for r in records], HEADLINE)
    costs = [
        _row(["model", "fit s", "total s", "wall s", "peak MB", "test reads", "repeat targets", "selected options"]),
        _row(["---", "---:", "---:", "---:", "---:", "---:", "---:", "---"]),
    ]
    costs += [
        _row(
            [
                r["name"],
                f"{r['result']['fit_seconds']:.1f}",
                f"{r['result']['total_seconds']:.1f}",
                f"{r['wall_seconds']:.1f}",
                f"{r['result']['peak_rss_mb']:.0f}",
                str(r["test_reads"]),
                str(r["result"]["test"]["n_repeat_targets"]),
                _searched_options(r),
            ]
        )
        for r in records
    ]
    return f"{_provenance(records)}\n\n{metrics}\n\n" + "\n".join(costs) + "\n"


def splice_bench_sections(document: str, records_of: Callable[[str], list[dict[str, Any]]]) -> str:
    """Rewrite every ``<!-- bench-results: DIR -->`` ... ``<!-- /bench-results -->`` block from DIR's records."""
    if not BENCH_SECTION.search(document):
        raise ValueError("the document has no <!-- bench-results: DIR --> ... <!-- /bench-results --> block")
    return BENCH_SECTION.sub(
        lambda m: (
            f"{m.group(1)}Generated from the JSON records in `{m.group(2)}/` by `scripts/bench_tables.py` "
            f"(do not edit by hand).\n{bench_section(records_of(m.group(2)))}{m.group(3)}"
        ),
        document,
    )


def _provenance(records: list[dict[str, Any]]) -> str:
    first, host = records[0], records[0]["machine"]
    commits = ", ".join(f"`{_short(commit)}`" for commit in sorted({r["git_commit"] or "unknown" for r in records}))
    loads = [r["machine"]["load_average"][0] for r in records]
    wall = sum(r["wall_seconds"] for r in records)
    packages = ", ".join(f"{name} {version}" for name, version in host["packages"].items() if version)
    quiet = (
        "quiet cores"
        if max(loads) < QUIET_LOAD
        else f"cores NOT quiet (1-min load average {min(loads):.2f}-{max(loads):.2f} at the starts): timings are noisy"
    )
    return (
        f"`{first['command']}`: run {first['date']} to {records[-1]['date']} at commit {commits}"
        f" on {host['cpu']} ({host['cores']} cores, {host['memory_gib']} GiB), Python {host['python']}, "
        f"{packages}; {quiet}. Wall time for all {len(records)}: {int(wall // 60)} min {wall % 60:.0f} s."
    )


def _searched_options(record: dict[str, Any]) -> str:
    """The values the grid search chose, in the config's order; "—" when nothing was searched."""
    options = record["result"]["options"]
    chosen = [f"{name} {_plain(options[name])}" for name in record["config"]["search"]]
    return ", ".join(chosen) or "—"


def _short(commit: str) -> str:
    """12 hex digits, keeping the ``-dirty`` mark of a run from uncommitted code."""
    return commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")


def _plain(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _row(cells: list[str]) -> str:
    # A "|" inside a model name would split the cell.
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
