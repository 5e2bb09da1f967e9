"""Fit a model, trying a grid of options, and keep the one that scores best on the validation split."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoprec.data.split import EvalSet
from shoprec.evaluation.protocol import EvalResult, evaluate
from shoprec.models.base import Recommender, TrainData, item_popularity
from shoprec.models.registry import create_model
from shoprec.privacy.dp import PrivacyGuarantee
from shoprec.training.config import RunConfig
from shoprec.training.fit import fit_model
from shoprec.training.loop import Progress
from shoprec.types import Sequences


@dataclass(frozen=True)
class Trial:
    options: dict[str, Any]
    valid: EvalResult
    fit_seconds: float
    privacy: PrivacyGuarantee | None = None  # what a DP-SGD fit spent


@dataclass(frozen=True)
class Selection:
    model: Recommender
    best: Trial
    trials: list[Trial]


def grid(search: dict[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """Every combination of the searched values (one empty combination when nothing is searched)."""
    names = sorted(search)
    for values in itertools.product(*(search[name] for name in names)):
        yield dict(zip(names, values, strict=True))


def fit_and_select(
    run: RunConfig,
    train: Sequences,
    valid: EvalSet,
    n_items: int,
    progress: Progress | None = None,
    item_vectors: Callable[[], np.ndarray] | None = None,
) -> Selection:
    """Fit once per grid point on ``train``; score each on ``valid`` through the shared evaluation path.

    Only the validation targets are ever read here: the test split stays untouched for a single final read.
    """
    popularity = item_popularity(train, n_items)
    combos = list(grid(run.search))
    best: tuple[Recommender, Trial] | None = None
    trials: list[Trial] = []
    for number, combo in enumerate(combos, start=1):
        options = {**run.options, **combo}
        model = create_model(run.model, options)
        vectors = item_vectors() if item_vectors is not None and model.uses_item_text else None
        data = TrainData(n_items=n_items, sequences=train, validation=valid, item_vectors=vectors)
        report = fit_model(model, data, progress, privacy=run.privacy)
        result = evaluate(
            model,
            valid,
            item_popularity=popularity,
            chunk_size=run.chunk_size,
            on_chunk=reporter(progress, f"{run.model} {number}/{len(combos)} validating", len(valid)),
        )
        trial = Trial(options=options, valid=result, fit_seconds=report.seconds, privacy=report.privacy)
        trials.append(trial)
        if best is None or _metric(trial, run) > _metric(best[1], run):
            best = (model, trial)
    assert best is not None
    return Selection(model=best[0], best=best[1], trials=trials)


def reporter(progress: Progress | None, description: str, total: int) -> Callable[[int], None] | None:
    """Adapt the (description, done, total) progress callback to evaluation's per-chunk ``on_chunk(done)``."""
    if progress is None:
        return None
    return lambda done: progress(description, done, total)


def _metric(trial: Trial, run: RunConfig) -> float:
    if run.selection_metric not in trial.valid.metrics:
        raise ValueError(f"selection_metric {run.selection_metric!r} is not one of {sorted(trial.valid.metrics)}")
    return trial.valid.metrics[run.selection_metric]
