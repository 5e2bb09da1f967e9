"""Fit any recommender: the one place that knows closed-form models from gradient-trained ones."""

from __future__ import annotations

import time

from shoprec.models.base import ClosedFormRecommender, Recommender, TrainableRecommender, TrainData
from shoprec.training.loop import FitReport, Progress, Trainer, Wrap, peak_rss_mb


def fit_model(
    model: Recommender, data: TrainData, progress: Progress | None = None, wrap: Wrap | None = None
) -> FitReport:
    """A ``TrainableRecommender`` goes through the one Trainer, configured by the trainer block of its own config,
    with ``wrap`` (e.g. DDP) around its network; a ``ClosedFormRecommender`` fits itself and has nothing to wrap."""
    if isinstance(model, TrainableRecommender):
        return Trainer(model.trainer_config, wrap).fit(model, data, progress)
    if not isinstance(model, ClosedFormRecommender):
        raise TypeError(f"{type(model).__name__} is neither a ClosedFormRecommender nor a TrainableRecommender")
    if wrap is not None:
        raise ValueError(f"{model.name} is fit in closed form: it has no network to wrap")
    started = time.perf_counter()
    model.fit(data)
    return FitReport(seconds=time.perf_counter() - started, peak_rss_mb=peak_rss_mb())
