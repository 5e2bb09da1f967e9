"""Fit any recommender: the one place that knows closed-form models from gradient-trained ones."""

from __future__ import annotations

import time

from shoprec.models.base import Recommender, TrainableRecommender, TrainData
from shoprec.training.loop import FitReport, Progress, Trainer, peak_rss_mb


def fit_model(model: Recommender, data: TrainData, progress: Progress | None = None) -> FitReport:
    """Closed-form models fit themselves; a ``TrainableRecommender`` goes through the one Trainer, configured
    by the trainer block of its own config."""
    if isinstance(model, TrainableRecommender):
        return Trainer(model.trainer_config).fit(model, data, progress)
    started = time.perf_counter()
    model.fit(data)
    return FitReport(seconds=time.perf_counter() - started, peak_rss_mb=peak_rss_mb())
