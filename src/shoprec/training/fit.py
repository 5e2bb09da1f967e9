"""Fit any recommender: the one place that knows closed-form models from gradient-trained ones."""

from __future__ import annotations

import time

from shoprec.evaluation.protocol import evaluate
from shoprec.models.base import ClosedFormRecommender, Recommender, TrainableRecommender, TrainData, item_popularity
from shoprec.models.blend import Blend
from shoprec.privacy.dp import PrivacyConfig
from shoprec.training.loop import METRIC, FitReport, Progress, Trainer, Wrap, peak_rss_mb


def fit_model(
    model: Recommender,
    data: TrainData,
    progress: Progress | None = None,
    wrap: Wrap | None = None,
    privacy: PrivacyConfig | None = None,
) -> FitReport:
    """A ``TrainableRecommender`` goes through the one Trainer, configured by the trainer block of its own config,
    with ``wrap`` (e.g. DDP) around its network, or DP-SGD under ``privacy``; a ``ClosedFormRecommender`` fits
    itself and has nothing to wrap, and no private fit. A ``Blend`` fits each part so, then weighs them on
    validation."""
    if isinstance(model, Blend):
        return _fit_blend(model, data, progress, wrap, privacy)
    if isinstance(model, TrainableRecommender):
        return Trainer(model.trainer_config, wrap, privacy).fit(model, data, progress)
    if not isinstance(model, ClosedFormRecommender):
        raise TypeError(f"{type(model).__name__} is neither a ClosedFormRecommender nor a TrainableRecommender")
    if wrap is not None:
        raise ValueError(f"{model.name} is fit in closed form: it has no network to wrap")
    if privacy is not None:
        raise ValueError(f"{model.name} is fit in closed form: it cannot be trained with DP-SGD")
    started = time.perf_counter()
    model.fit(data)
    return FitReport(seconds=time.perf_counter() - started, peak_rss_mb=peak_rss_mb())


def _fit_blend(
    blend: Blend, data: TrainData, progress: Progress | None, wrap: Wrap | None, privacy: PrivacyConfig | None
) -> FitReport:
    """Each part fit as it would be alone, then the weight whose blend scores the best validation NDCG@10 (read
    through the one evaluation path); without validation data only a weight fixed in the config can be used."""
    if data.validation is None and blend.config.weight is None:
        raise ValueError("a blend chooses its weight on validation data: give some, or set options.weight")
    started = time.perf_counter()
    for part in blend.parts:
        fit_model(part, data, progress, wrap, privacy)
    popularity = item_popularity(data.sequences, data.n_items)

    def validated(_weight: float) -> float:
        assert data.validation is not None  # settle searches only without a fixed weight, checked above
        return evaluate(blend, data.validation, popularity, ks=(10,), group_gaps=False).metrics[METRIC]

    best = blend.settle(validated)
    return FitReport(seconds=time.perf_counter() - started, peak_rss_mb=peak_rss_mb(), best_valid=best)
