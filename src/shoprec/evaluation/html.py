"""One self-contained HTML audit report from plain data: tables, trade-off figures as embedded PNGs, example feeds.

Rendering only: the caller gathers the figures (an ``EvalResult``, trade-off rows, example lists as titles and
words), so the report can be tested from hand-made data and never ranks or reads a split itself. The page needs no
network and no JavaScript: styles are inline and every image is a ``data:`` URI.
"""

from __future__ import annotations

import base64
import functools
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jinja2

from shoprec.evaluation.protocol import EvalResult

TEMPLATES = "templates"
ACCURACY = ("HR", "NDCG", "MRR")
BEYOND = (
    "Coverage",
    "Gini",
    "Novelty",
    "MeanPop",
    "ExposureHead",
    "ExposureMid",
    "ExposureTail",
    "ILD",
    "CalibrationKL",
    "ProviderGini",
    "ExposureSmallProviders",
)
TRADEOFF_Y = "NDCG@10"
NOT_KNOBS = frozenset({"seconds"})
_ACCURACY_FAMILIES = frozenset({*ACCURACY, "Recall", "Precision", "F1"})  # never an x axis of a trade-off figure
_METRIC = re.compile(r"\A(\w+)@(\d+)\Z")
_PANEL_INCHES = (4.8, 3.4)
_MIN_WIDTH_INCHES = 7.0  # a one-panel figure still fits its title

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Header:
    """Where the figures come from: data, model and its options, when, which code and machine, and which split."""

    data: str
    model: str
    options: Mapping[str, Any]
    date: str
    commit: str | None
    machine: Mapping[str, Any]
    split: str


@dataclass(frozen=True)
class FeedItem:
    """One shown item: its words only (title, category, reasons), so escaping is the template's one job."""

    title: str
    category: str | None
    reasons: tuple[str, ...] = ()
    new: bool = False  # not in the list before re-ranking
    target: bool = False  # the user's held-out next item


@dataclass(frozen=True)
class Example:
    """One user's history and feed before and after re-ranking: what the knobs do, seen on a person."""

    user: str
    history: tuple[str, ...]  # titles, most recent last
    hidden: int  # older history items not shown
    before: tuple[FeedItem, ...]
    after: tuple[FeedItem, ...]
    notes: tuple[str, ...] = ()  # what the re-ranking could not do, said to the reader


@dataclass(frozen=True)
class Tradeoff:
    """One trade-off record (``scripts/tradeoff.py --out``): rows of knob values and the metrics they gave."""

    name: str
    rows: Sequence[Mapping[str, float]]
    caption: str = ""

    def __post_init__(self) -> None:
        if not beyond_columns([row for row in self.rows if TRADEOFF_Y in row]):
            raise ValueError(f"trade-off {self.name}: no rows with {TRADEOFF_Y} and a beyond-accuracy column")


@dataclass(frozen=True)
class Report:
    """Everything one document shows; ``knobs`` are the re-ranking settings of the examples' "after" lists."""

    header: Header
    result: EvalResult
    tradeoffs: Sequence[Tradeoff] = ()
    examples: Sequence[Example] = ()
    knobs: Mapping[str, object] = field(default_factory=dict)  # knob name -> setting; 0 (off) is not shown


def render_report(report: Report) -> str:
    """The whole document; user text (titles, categories, options) is escaped by the template's autoescape."""
    ks, metric_rows = metric_grid(report.result.metrics)
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            header=report.header,
            machine=machine_line(report.header.machine),
            options=flatten(report.header.options),
            ks=ks,
            metric_rows=metric_rows,
            result=report.result,
            slice_metrics=list(report.result.slices[0].metrics) if report.result.slices else [],
            figures=[(tradeoff, tradeoff_png(tradeoff)) for tradeoff in report.tradeoffs],
            examples=report.examples,
            knob_text=", ".join(f"{name} {value:g}" for name, value in report.knobs.items() if value) or "no knob set",
        )
    )


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("shoprec.evaluation", TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def metric_grid(metrics: Mapping[str, float]) -> tuple[list[int], list[tuple[str, str, list[float | None]]]]:
    """The cut-offs present, and one row (section, family, value per cut-off or None) per family present: a 12 x 3
    grid reads better than 36 rows of ``name@k``."""
    parsed = [(m.group(1), int(m.group(2)), value) for name, value in metrics.items() if (m := _METRIC.match(name))]
    ks = sorted({k for _, k, _ in parsed})
    values = {(family, k): value for family, k, value in parsed}
    rows = [
        (section, family, [values.get((family, k)) for k in ks])
        for section, families in (("accuracy", ACCURACY), ("beyond accuracy", BEYOND))
        for family in families
        if any((family, k) in values for k in ks)
    ]
    return ks, rows


def machine_line(machine: Mapping[str, Any]) -> str:
    """``provenance.machine()`` in one line; keys a record lacks are left out rather than shown as blanks."""
    parts = [
        str(machine.get("cpu") or "unknown CPU"),
        f"{machine['cores']} cores" if machine.get("cores") else "",
        f"{machine['memory_gib']} GiB" if machine.get("memory_gib") else "",
        f"Python {machine['python']}" if machine.get("python") else "",
        ", ".join(f"{name} {version}" for name, version in (machine.get("packages") or {}).items() if version),
        f"load average {machine['load_average'][0]} at the start" if machine.get("load_average") else "",
    ]
    return "; ".join(part for part in parts if part)


def flatten(options: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested options as ``train.epochs = 6`` pairs, so a model's whole config fits one short table."""
    pairs: list[tuple[str, str]] = []
    for key, value in options.items():
        if isinstance(value, Mapping):
            pairs += flatten(value, f"{prefix}{key}.")
        else:
            pairs.append((f"{prefix}{key}", "—" if value is None else str(value)))
    return pairs


def knob_keys(rows: Sequence[Mapping[str, object]]) -> list[str]:
    """Numeric keys that are not metric names (``Name@k``) nor ``seconds``: what was set, in first-seen order (a
    record's nested details, such as its group gaps' intervals, are not knobs)."""
    keys = dict.fromkeys(key for row in rows for key, value in row.items() if isinstance(value, int | float))
    return [key for key in keys if not _METRIC.match(key) and key not in NOT_KNOBS]


def beyond_columns(rows: Sequence[Mapping[str, float]]) -> list[str]:
    """The beyond-accuracy metric columns present in every row, in first-seen order: the figure's x axes."""
    families = {key: m.group(1) for row in rows for key in row if (m := _METRIC.match(key))}
    return [
        key for key, family in families.items() if family not in _ACCURACY_FAMILIES and all(key in row for row in rows)
    ]


def point_label(row: Mapping[str, float], knobs: Sequence[str]) -> str:
    """A point's knob setting: the bare value for a one-knob sweep (the title names it), ``name value`` pairs else."""
    if len(knobs) == 1:
        return f"{row[knobs[0]]:g}"
    return ", ".join(f"{knob} {row[knob]:g}" for knob in knobs if knob in row)


def tradeoff_png(tradeoff: Tradeoff) -> str:
    """NDCG@10 against each beyond-accuracy column, one panel each, as a ``data:image/png;base64`` URI."""
    from matplotlib.figure import Figure  # here, not at the top: 0.7 s that every other CLI command would pay

    rows = [row for row in tradeoff.rows if TRADEOFF_Y in row]
    columns = beyond_columns(rows)
    knobs = knob_keys(rows)
    n_cols = min(len(columns), 2)
    n_rows = math.ceil(len(columns) / n_cols)
    width = max(_PANEL_INCHES[0] * n_cols, _MIN_WIDTH_INCHES)
    figure = Figure(figsize=(width, _PANEL_INCHES[1] * n_rows), layout="constrained")
    figure.suptitle(f"{tradeoff.name}: points labelled by {', '.join(knobs) or 'row'}", fontsize=11)
    for position, column in enumerate(columns, start=1):
        _panel(figure.add_subplot(n_rows, n_cols, position), rows, column, knobs)
    return png_uri(figure)


def _panel(axes: Axes, rows: Sequence[Mapping[str, float]], column: str, knobs: Sequence[str]) -> None:
    xs, ys = [row[column] for row in rows], [row[TRADEOFF_Y] for row in rows]
    axes.plot(xs, ys, "o-" if len(knobs) == 1 else "o", color="#3465a4", markersize=4, linewidth=1)
    middle = (min(xs) + max(xs)) / 2
    for x, y, row in zip(xs, ys, rows, strict=True):
        left = x > middle  # labels lean towards the middle, so the widest stay inside the panel
        offset = (-4 if left else 4, 4)
        label = point_label(row, knobs)
        axes.annotate(label, (x, y), offset, textcoords="offset points", fontsize=7, ha="right" if left else "left")
    axes.margins(x=0.08, y=0.1)
    axes.locator_params(axis="x", nbins=5)  # four-decimal ticks (ExposureTail) ran into each other at the default
    axes.set_xlabel(column)
    axes.set_ylabel(TRADEOFF_Y)
    axes.grid(alpha=0.3)


def png_uri(figure: Figure) -> str:
    """Rendered by Agg explicitly (no pyplot state, no display), embedded so the report is one file."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
