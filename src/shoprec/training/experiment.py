"""The two ways a model meets data: train on everything (last item = validation), or the full leave-one-out
protocol (fit on train, select on validation, read the test split once)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoprec.data.dataset import Dataset
from shoprec.data.split import Split, cold_item_split, hold_out_last, leave_one_out, temporal_split
from shoprec.encoders.cache import CachedEncoder, encode_catalog
from shoprec.encoders.item_text import catalog_texts
from shoprec.encoders.text import create_encoder
from shoprec.evaluation.ledger import Ledger
from shoprec.evaluation.protocol import EvalResult, audit_of, evaluate
from shoprec.models.artifact import HeldOutUsers, Manifest
from shoprec.models.base import DataShape, item_popularity
from shoprec.models.registry import model_class
from shoprec.privacy.erasure import erasure_tag
from shoprec.training.config import RunConfig
from shoprec.training.loop import peak_rss_mb
from shoprec.training.select import Progress, Selection, fit_and_select, reporter
from shoprec.types import Sequences


def train_model(dataset: Dataset, run: RunConfig, progress: Progress | None = None) -> tuple[Selection, Manifest]:
    """Fit on every user's sequence except its last item, which serves only as the validation target; users of
    the run's ``holdout_users`` fraction are left out whole and named in the manifest."""
    sequences, held_out = hold_out_users(dataset.sequences, run.holdout_users, run.holdout_seed)
    train, valid = hold_out_last(sequences)
    run = with_data_defaults(run, dataset, train)
    selection = fit_and_select(run, train, valid, dataset.items.size, progress, text_vectors(dataset, run, progress))
    uses_text = selection.model.uses_item_text
    manifest = Manifest(
        model=run.model,
        options=selection.model.config.model_dump(mode="json"),
        run=run.model_dump(mode="json"),
        data_name=dataset.name,
        data_fingerprint=dataset.fingerprint(),
        n_items=dataset.n_items,
        metrics=selection.best.valid.metrics,
        fit_seconds=selection.best.fit_seconds,
        encoder=run.encoder if uses_text else None,
        encoder_name=create_encoder(run.encoder).name if uses_text else None,
        privacy=selection.best.privacy,
        held_out=None
        if run.holdout_users == 0
        else HeldOutUsers(
            fraction=run.holdout_users,
            seed=run.holdout_seed,
            tags=tuple(sorted(erasure_tag(dataset.users.id_of(int(user))) for user in held_out.users)),
        ),
    )
    return selection, manifest


def hold_out_users(sequences: Sequences, fraction: float, seed: int) -> tuple[Sequences, Sequences]:
    """(the rows trained on, the rows of a seeded random ``fraction`` of users left out whole)."""
    out = np.random.default_rng(seed).random(len(sequences)) < fraction
    return sequences.take(np.flatnonzero(~out)), sequences.take(np.flatnonzero(out))


@dataclass(frozen=True)
class ProtocolResult:
    """Validation and test results of the selected configuration, with what it cost."""

    model: str
    options: dict[str, Any]
    valid: EvalResult
    test: EvalResult
    fit_seconds: float
    total_seconds: float
    peak_rss_mb: float
    test_reads: int  # reads of this data's test split with this configuration, per the ledger, this one included
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "options": self.options,
            "valid": self.valid.to_dict(),
            "test": self.test.to_dict(),
            "fit_seconds": round(self.fit_seconds, 2),
            "total_seconds": round(self.total_seconds, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "test_reads": self.test_reads,
            "trials": self.trials,
        }


def run_protocol(
    dataset: Dataset, run: RunConfig, progress: Progress | None = None, ledger: Ledger | None = None
) -> ProtocolResult:
    """Full ranking, seen items excluded, on the run's split; the test targets are read exactly once, here, and
    that read is recorded in ``ledger`` (default ``Ledger.default()``)."""
    started = time.perf_counter()
    split = make_split(dataset, run)
    run = with_data_defaults(run, dataset, split.train)
    vectors = text_vectors(dataset, run, progress)
    selection = fit_and_select(run, split.train, split.valid, dataset.items.size, progress, vectors)
    popularity = item_popularity(split.train, dataset.items.size)
    test = evaluate(
        selection.model,
        split.test,
        item_popularity=popularity,
        chunk_size=run.chunk_size,
        on_chunk=reporter(progress, f"{run.model} testing", len(split.test)),
        **audit_of(dataset),
    )
    reads = (ledger or Ledger.default()).record(
        data_name=dataset.name,
        data_fingerprint=dataset.fingerprint(),
        model=run.model,
        config=run.identity(),
        split=run.split,
        n_users=len(split.test),
    )
    return ProtocolResult(
        model=run.model,
        options=selection.model.config.model_dump(),
        valid=selection.best.valid,
        test=test,
        fit_seconds=selection.best.fit_seconds,
        total_seconds=time.perf_counter() - started,
        peak_rss_mb=peak_rss_mb(),
        test_reads=reads,
        trials=[
            {"options": t.options, "valid": t.valid.metrics, "fit_seconds": t.fit_seconds} for t in selection.trials
        ],
    )


def tune(dataset: Dataset, run: RunConfig, progress: Progress | None = None) -> Selection:
    """Try the run's grid on the split's validation targets only; the test targets are never read."""
    split = make_split(dataset, run)
    run = with_data_defaults(run, dataset, split.train)
    return fit_and_select(
        run, split.train, split.valid, dataset.items.size, progress, text_vectors(dataset, run, progress)
    )


def with_data_defaults(run: RunConfig, dataset: Dataset, train: Sequences) -> RunConfig:
    """``run`` with the options it leaves out filled in by its model's default-config rule, read from the shape of
    the training split (never of its held-out items), when the run asks for that; else ``run`` itself."""
    if not run.options_from_data:
        return run
    shape = DataShape.of(train, dataset.items.size, has_text=any(catalog_texts(dataset.catalog)))
    return run.model_copy(update={"options": {**model_class(run.model).options_for(shape), **run.options}})


def text_vectors(dataset: Dataset, run: RunConfig, progress: Progress | None) -> Callable[[], np.ndarray]:
    """The catalog's item vectors, encoded on first call (through the on-disk cache) and then reused."""

    @functools.cache
    def encode() -> np.ndarray:
        encoder = CachedEncoder(create_encoder(run.encoder), run.cache_dir / "encoders")
        on_batch = reporter(progress, f"encoding item text ({encoder.name})", dataset.n_items)
        return encode_catalog(dataset.catalog, encoder, run.encoder.max_chars, on_batch)

    return encode


def make_split(dataset: Dataset, run: RunConfig) -> Split:
    """The run's split of the users not held out (``holdout_users``)."""
    sequences, _ = hold_out_users(dataset.sequences, run.holdout_users, run.holdout_seed)
    if run.split == "temporal":
        return temporal_split(sequences)
    if run.split == "cold_items":
        return cold_item_split(sequences, dataset.items.size, run.cold_fraction, run.split_seed)
    return leave_one_out(sequences)
