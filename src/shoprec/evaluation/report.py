"""Markdown tables of evaluation results, shared by `shoprec bench`, `shoprec evaluate` and docs/benchmarks.md."""

from __future__ import annotations

from shoprec.evaluation.protocol import EvalResult


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


def _row(cells: list[str]) -> str:
    # A "|" inside a model name would split the cell.
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"
