"""`shoprec report`: one self-contained HTML audit of a trained model on its data, readable without the tools.

This module only gathers (figures, example feeds through the served feed ranker); ``evaluation.html`` renders.
Without ``--results`` it measures the model on its own validation targets (each user's last item, which
`shoprec train` holds out and selects epochs on) and never reads a test split: knob settings chosen from a report
must not be chosen on test targets.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import typer

from shoprec.cli.common import console, load_data, progress_bars
from shoprec.cli.models import DATA_HELP
from shoprec.data.dataset import Dataset
from shoprec.data.split import EvalSet, hold_out_last
from shoprec.evaluation import provenance
from shoprec.evaluation.html import Example, FeedItem, Header, Report, Tradeoff, render_report
from shoprec.evaluation.protocol import EvalResult, audit_of, evaluate
from shoprec.models.artifact import load_artifact
from shoprec.models.base import Recommender, item_popularity
from shoprec.ranking.items import ItemIndex, catalog_records, model_items
from shoprec.ranking.recommend import feed_ranker
from shoprec.ranking.types import Knobs, Ranked, Reason, Request
from shoprec.types import Sequences

FEED_LENGTH = 10
HISTORY_SHOWN = 10  # most recent history items shown per example user
MIN_HISTORY = 3  # an example user's validation history holds at least this many items
VALIDATION = (
    "validation targets: each user's last item, held out of `shoprec train` and used to select its epochs "
    "(full ranking, history excluded)"
)
NO_VECTORS = (
    "this model has no item vectors (and the report encodes no item text): diversity has no similarity to act on, "
    "and reasons cannot name a single history item"
)


def report(
    data: Path = typer.Option(..., help=DATA_HELP + " The data the model was trained on."),
    model_dir: Path = typer.Option(..., help="A directory written by `shoprec train` on DATA."),
    out: Path = typer.Option(..., help="The HTML file to write."),
    results: Path | None = typer.Option(
        None, help="JSON of `shoprec evaluate --out` to show (its test result, else its validation one)."
    ),
    tradeoff: list[Path] | None = typer.Option(
        None, help="A trade-off record of `scripts/tradeoff.py --out` (repeatable): one figure each."
    ),
    examples: int = typer.Option(3, min=0, help="Example users, evenly spaced over the validation users."),
    diversity: float = typer.Option(0.5, min=0.0, max=1.0, help="MMR's knob for the re-ranked example lists."),
    calibration: float = typer.Option(0.0, min=0.0, max=1.0, help="Category calibration's knob, the same."),
    tail_share: float = typer.Option(0.1, min=0.0, max=1.0, help="The long tail's least share of each list."),
    provider_share: float = typer.Option(0.0, min=0.0, max=1.0, help="Small providers' least share of each list."),
    popularity_correction: float = typer.Option(
        0.0, min=0.0, max=1.0, help="How much of each item's training popularity the scores divide out."
    ),
) -> None:
    """Metrics, slices and group gaps, trade-off figures and example feeds before and after re-ranking, in one
    HTML file with images embedded. Without --results the figures are the model's validation ones."""
    if diversity > 0 and calibration > 0:
        raise typer.BadParameter(
            "diversity and calibration are alternatives: set one of them", param_hint="--calibration"
        )
    tradeoffs = [read_tradeoff(path) for path in tradeoff or []]  # a bad file fails before minutes of ranking
    given = read_results(results) if results is not None else None
    dataset, _ = load_data(data)
    model, vocabulary, manifest = load_artifact(model_dir)
    if manifest.data_fingerprint != dataset.fingerprint():
        raise ValueError(
            f"{model_dir} was not trained by `shoprec train` on {data}, so which targets it never saw is unknown: "
            "report on its training data"
        )
    trained_on, valid = hold_out_last(dataset.sequences)
    result, source = given or (validation_result(model, dataset, trained_on, valid), VALIDATION)
    knobs = Knobs(
        diversity=diversity,
        calibration=calibration,
        tail_share=tail_share,
        provider_share=provider_share,
        popularity_correction=popularity_correction,
    )
    items = model_items(model, vocabulary.ids, records=catalog_records(dataset, vocabulary.ids))
    shown = gather_examples(model, dataset, items, valid, example_rows(valid, examples), knobs)
    header = Header(
        data=dataset.name,
        model=manifest.model,
        options=manifest.options,
        date=provenance.utc_now(),
        commit=provenance.git_commit(),
        machine=provenance.machine(),
        split=source,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(Report(header, result, tradeoffs, shown, knobs)), encoding="utf-8")
    console.print(f"[green]wrote[/green] {out}: figures from the {source}", highlight=False)


def read_tradeoff(path: Path) -> Tradeoff:
    """A trade-off record captioned with where it came from; a file without rows fails before any ranking."""
    record = read_json(path)
    if not isinstance(record, dict) or not isinstance(record.get("rows"), list):
        raise ValueError(f"{path} has no 'rows' list: not a record of `scripts/tradeoff.py --out`")
    commit = f"commit {record['commit']}" if record.get("commit") else None
    facts = [record.get("split"), record.get("date"), commit, record.get("command")]
    caption = f"{path.name}: {record.get('model', '?')} on {record.get('data', '?')}; "
    return Tradeoff(path.stem, record["rows"], caption + "; ".join(str(fact) for fact in facts if fact))


def read_results(path: Path) -> tuple[EvalResult, str]:
    """A result file's test figures where it has them (what `shoprec evaluate` reports), else its validation ones."""
    payload = read_json(path)
    for key, name in (("test", "test"), ("valid", "validation")):
        if isinstance(payload, dict) and key in payload:
            return EvalResult.from_dict(payload[key]), f"{name} split, from {path.name} (`shoprec evaluate --out`)"
    raise ValueError(f"{path} holds neither 'test' nor 'valid': not written by `shoprec evaluate --out`")


def read_json(path: Path) -> Any:
    """A JSON file; one that is not JSON is an error naming the file, which the parser's message alone does not."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON ({error})") from None


def validation_result(model: Recommender, dataset: Dataset, trained_on: Sequences, valid: EvalSet) -> EvalResult:
    """The protocol on the validation targets, with categories, providers and user attributes as `run_protocol`
    audits them."""
    with progress_bars() as progress:
        return evaluate(
            model,
            valid,
            item_popularity(trained_on, dataset.items.size),
            on_chunk=lambda done: progress("validation", done, len(valid)),
            **audit_of(dataset),
        )


def example_rows(valid: EvalSet, n: int) -> np.ndarray:
    """Rows of ``valid`` evenly spaced over the users with a history of at least MIN_HISTORY: deterministic, and
    not all from the top of the file."""
    rows = np.flatnonzero(valid.histories.lengths() >= MIN_HISTORY)
    if n == 0 or len(rows) == 0:
        return rows[:0]
    return np.unique(rows[np.linspace(0, len(rows) - 1, min(n, len(rows))).round().astype(np.int64)])


def gather_examples(
    model: Recommender,
    dataset: Dataset,
    items: ItemIndex,
    valid: EvalSet,
    rows: np.ndarray,
    knobs: Knobs,
) -> list[Example]:
    """Each user's feed as the model orders it and as the served feed ranker reorders it with ``knobs``, both with
    the feed's reasons."""
    requests = [Request(history=valid.histories.row(int(row)), k=FEED_LENGTH) for row in rows]
    ranker = feed_ranker(model)
    plain = ranker.rank(requests, items)
    reranked = ranker.rank([replace(request, **knobs) for request in requests], items)
    said = (NO_VECTORS,) if items.unit_table is None else ()
    return [
        example(dataset, items, valid, int(row), before, after, said)
        for row, before, after in zip(rows, plain, reranked, strict=True)
    ]


def example(
    dataset: Dataset, items: ItemIndex, valid: EvalSet, row: int, before: Ranked, after: Ranked, said: tuple[str, ...]
) -> Example:
    history = valid.histories.row(row)
    shown = history[-HISTORY_SHOWN:]
    targets = set(valid.targets.row(row).tolist())
    return Example(
        user=f"user {dataset.users.id_of(int(valid.histories.users[row]))[:12]} ({len(history)} items in history)",
        history=tuple(dataset.title(int(i)) for i in shown),
        hidden=len(history) - len(shown),
        before=feed(dataset, items, before, targets),
        after=feed(dataset, items, after, targets, set(before.items.tolist())),
        notes=(*after.notes, *said),
    )


def feed(
    dataset: Dataset, items: ItemIndex, ranked: Ranked, targets: set[int], before: set[int] | None = None
) -> tuple[FeedItem, ...]:
    """A ranked list in words; with ``before``, the items it did not hold are marked new."""
    return tuple(
        FeedItem(
            title=dataset.title(i),
            category=items.category(i),
            reasons=tuple(reason_text(dataset, reason) for reason in reasons),
            new=before is not None and i not in before,
            target=i in targets,
        )
        for i, reasons in zip(ranked.items.tolist(), ranked.reasons, strict=True)
    )


def reason_text(dataset: Dataset, reason: Reason) -> str:
    """Kind and share, then the history item it names, else how it was found. An audit wants the shares, which
    the assistant's shopper-facing wording (``llm.wording``) leaves out."""
    named = f"“{dataset.title(reason.item)}”" if reason.item is not None else reason.detail
    return f"{reason.kind} {reason.share:.0%}" + (f": {named}" if named else "")
