"""The one Trainer: every gradient-trained model is fit here, with the loss injected by the model.

AdamW, linear warm-up then cosine or linear decay, gradient clipping, and early stopping on validation NDCG@10
read through the same full-ranking evaluation as every reported figure. The best weights are kept in memory and
restored at the end, so the model that comes back is the one that validated best.

The Trainer owns the device, the module the loss calls (the built network, or a wrapper such as DDP or Opacus's
GradSampleModule around it) and the randomness: one ``torch.Generator`` for shuffling and sampled negatives, and
the global RNG (initialisation, dropout) seeded for the fit and handed back as the caller had it.

With a ``PrivacyConfig`` the fit is DP-SGD (``shoprec.training.private``): Poisson-sampled users, per-user clipping
and noise, every epoch run and the last weights kept. Validation would read the held-out items of the very users
trained on, which the accountant does not cover, so a private fit neither validates nor stops early.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import logging
import math
import os
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from shoprec.evaluation.protocol import evaluate
from shoprec.models.base import TrainableRecommender, TrainData, TrainerConfig, item_popularity
from shoprec.privacy.dp import PrivacyConfig, PrivacyGuarantee
from shoprec.training.private import PrivatePlan, private_step
from shoprec.types import Sequences

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (task description, done, total)
Wrap = Callable[[nn.Module], nn.Module]  # the built network -> the module training calls (e.g. DDP)
METRIC = "NDCG@10"  # early stopping and best-state selection


class CurvePoint(NamedTuple):
    """One validation during a fit: how long training had run, and what it reached."""

    epoch: int
    train_seconds: float  # training time up to this epoch, validations excluded
    wall_seconds: float  # since the fit began: batching, validations and building the network included
    hr: float  # validation HR@10
    ndcg: float  # validation NDCG@10


@dataclass(frozen=True)
class FitReport:
    """What a fit cost and where it stopped; a closed-form fit has no epochs."""

    seconds: float  # wall time of the whole fit, validations included
    peak_rss_mb: float  # peak resident memory of the process so far
    epochs: int = 0  # epochs run
    best_epoch: int | None = None  # epoch whose weights were kept
    best_valid: float | None = None  # validation NDCG@10 of the kept weights
    epoch_seconds: tuple[float, ...] = ()  # training time of each epoch, validation excluded
    losses: tuple[float, ...] = ()  # mean training loss of each epoch
    curve: tuple[CurvePoint, ...] = ()  # every validation with its time: accuracy against time spent
    privacy: PrivacyGuarantee | None = None  # what a DP-SGD fit spent; None: not private

    @property
    def seconds_per_epoch(self) -> float:
        return sum(self.epoch_seconds) / len(self.epoch_seconds) if self.epoch_seconds else 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def lr_factor(step: int, warmup_steps: int, total_steps: int, decay: str) -> float:
    """Multiplier of the peak lr at ``step``: linear warm-up to 1, then cosine or linear decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress)) if decay == "cosine" else 1.0 - progress


def parameter_groups(network: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices only: decaying embeddings, LayerNorm gains or biases just shrinks them."""
    decayed: list[nn.Parameter] = []
    plain: list[nn.Parameter] = []
    for module in network.modules():
        for name, parameter in module.named_parameters(recurse=False):
            exempt = isinstance(module, nn.Embedding | nn.LayerNorm) or name == "bias"
            (plain if exempt else decayed).append(parameter)
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


@dataclass
class _Stopper:
    """Tracks the best validation score and its weights; says when ``patience`` validations brought nothing."""

    network: nn.Module
    patience: int
    best: float = -math.inf
    best_epoch: int | None = None
    state: dict[str, torch.Tensor] | None = None
    stale: int = 0

    def update(self, epoch: int, score: float) -> bool:
        """Record one validation; True when training should stop."""
        if score > self.best:
            self.best, self.best_epoch, self.stale = score, epoch, 0
            self.state = copy.deepcopy(self.network.state_dict())
            return False
        self.stale += 1
        return self.stale >= self.patience


class Trainer:
    """Fits a ``TrainableRecommender``: the model supplies network, batches and loss; this supplies the rest.

    ``wrap``, when given, turns the built network into the module the loss is computed through; the model keeps
    (and scores with) the network inside it. Thread count and global RNG state are restored when ``fit`` returns.
    """

    def __init__(self, config: TrainerConfig, wrap: Wrap | None = None, privacy: PrivacyConfig | None = None) -> None:
        if wrap is not None and privacy is not None:
            raise ValueError("a wrapped network cannot also be trained with DP-SGD here: give wrap or privacy")
        self.config = config
        self.wrap = wrap
        self.privacy = privacy

    def fit(self, model: TrainableRecommender[Any], data: TrainData, progress: Progress | None = None) -> FitReport:
        """Train ``model`` on ``data.sequences``; validate on ``data.validation`` (when given) to stop early."""
        threads = torch.get_num_threads()
        torch.set_num_threads(self.config.threads or os.cpu_count() or 1)
        try:
            with _seeded(self.config.seed, torch.device(self.config.device)):  # initial weights, dropout
                return self._fit(model, data, progress)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, model: TrainableRecommender[Any], data: TrainData, progress: Progress | None) -> FitReport:
        config = self.config
        started = time.perf_counter()
        generator = torch.Generator().manual_seed(config.seed)  # shuffling, sampled negatives, Poisson draws
        plan = None
        if self.privacy is not None:
            plan = PrivatePlan.for_fit(self.privacy, data.sequences, config.batch_size, config.epochs)
            data = replace(data, private=True, validation=None)
        network = model.build(data).to(config.device)
        private = None if plan is None else plan.wrap(network)
        module = private if private is not None else network if self.wrap is None else self.wrap(network)
        epochs = _epochs(model, data.sequences, config, plan, generator)
        first = next(epochs)  # the schedule's length is known once an epoch is batched
        steps = len(first) if plan is None else plan.steps_per_epoch  # a Poisson draw may be skipped: planned
        optimizer, scheduler = self._optimiser(module, total_steps=steps * config.epochs)
        if plan is not None:
            optimizer = plan.optimizer(optimizer, config.seed)
        stopper = _Stopper(network, config.patience)
        popularity = item_popularity(data.sequences, data.n_items)
        seconds: list[float] = []
        losses: list[float] = []
        curve: list[CurvePoint] = []
        with _writer(config.tensorboard) as writer:
            for epoch, batches in enumerate(itertools.chain([first], epochs), start=1):
                scalars = {"train/lr": float(scheduler.get_last_lr()[0])}
                tick = time.perf_counter()
                losses.append(self._epoch(model, module, batches, generator, optimizer, scheduler))
                seconds.append(time.perf_counter() - tick)
                scalars |= {"train/loss": losses[-1], "train/epoch_seconds": seconds[-1]}
                metrics = self._validate(model, data, popularity, epoch)
                if metrics is not None:
                    wall = time.perf_counter() - started
                    curve.append(CurvePoint(epoch, sum(seconds), wall, metrics["HR@10"], metrics[METRIC]))
                stop = metrics is not None and stopper.update(epoch, metrics[METRIC])
                _log(writer, {**scalars, **{f"valid/{name}": value for name, value in (metrics or {}).items()}}, epoch)
                log.info(
                    "%s epoch %d: loss %.4f, %.1f s%s",
                    model.name,
                    epoch,
                    losses[-1],
                    seconds[-1],
                    "".join(f", valid {name} {value:.4f}" for name, value in (metrics or {}).items()),
                )
                if progress is not None:
                    progress(f"{model.name} training (epochs)", epoch, config.epochs)
                if stop:
                    break
        if stopper.state is not None:
            network.load_state_dict(stopper.state)
        if private is not None:
            private.remove_hooks()  # the network scores on without Opacus's hooks
        network.eval()  # from here the model only scores
        return FitReport(
            seconds=time.perf_counter() - started,
            peak_rss_mb=peak_rss_mb(),
            epochs=len(losses),
            best_epoch=stopper.best_epoch,
            best_valid=stopper.best if stopper.best_epoch is not None else None,
            epoch_seconds=tuple(seconds),
            losses=tuple(losses),
            curve=tuple(curve),
            privacy=None if plan is None else plan.guarantee(len(losses)),
        )

    def _optimiser(
        self, network: nn.Module, total_steps: int
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        """AdamW over ``network`` and its warm-up-then-decay schedule, stepped once per batch."""
        config = self.config
        optimizer = torch.optim.AdamW(parameter_groups(network, config.weight_decay), lr=config.lr)
        factor = functools.partial(
            lr_factor, warmup_steps=config.warmup_steps, total_steps=total_steps, decay=config.decay
        )
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def _epoch(
        self,
        model: TrainableRecommender[Any],
        module: nn.Module,
        batches: list[Any],
        generator: torch.Generator,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
    ) -> float:
        """One pass over ``batches`` through ``module`` (the network or its wrapper); returns the mean loss."""
        module.train()
        device = torch.device(self.config.device)
        total = 0.0
        for batch in batches:
            if self.privacy is not None:  # per-user clipping and noise, not the global clip below
                total += private_step(model, module, optimizer, _on(device, batch), generator)
                scheduler.step()
                continue
            optimizer.zero_grad(set_to_none=True)
            loss = model.loss(module, _on(device, batch), generator)
            loss.backward()
            if self.config.clip_norm is not None:
                nn.utils.clip_grad_norm_(module.parameters(), self.config.clip_norm)
            optimizer.step()
            scheduler.step()
            total += float(loss.detach())
        return total / max(1, len(batches))

    def _validate(
        self, model: TrainableRecommender[Any], data: TrainData, popularity: np.ndarray, epoch: int
    ) -> dict[str, float] | None:
        """HR@10 and NDCG@10 through the one full-ranking evaluation path, on validation epochs only."""
        due = epoch % self.config.eval_every == 0 or epoch == self.config.epochs
        if data.validation is None or not due:
            return None
        metrics = evaluate(model, data.validation, popularity, ks=(10,), group_gaps=False).metrics
        return {name: metrics[name] for name in ("HR@10", METRIC)}


def _epochs(
    model: TrainableRecommender[Any],
    sequences: Sequences,
    config: TrainerConfig,
    plan: PrivatePlan | None,
    generator: torch.Generator,
) -> Iterator[list[Any]]:
    """Each epoch's batches, made when it starts: the model's shuffled batches, or DP-SGD's Poisson draws."""
    for _ in range(config.epochs):
        if plan is None:
            yield model.batches(sequences, config.batch_size, generator)
        else:
            yield plan.batches(model, sequences, generator)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """The global RNGs that initialisation and dropout draw from (the CPU's, and the accelerator's when training on
    one) seeded for the block, then put back as the caller had them."""
    if device.type == "cpu":
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            yield
        return
    accelerator = torch.get_device_module(device.type)
    with torch.random.fork_rng(devices=range(accelerator.device_count()), device_type=device.type):
        torch.random.default_generator.manual_seed(seed)
        accelerator.manual_seed_all(seed)
        yield


def _on(device: torch.device, batch: Any) -> Any:
    """``batch`` with every tensor in it (also inside tuples and lists) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, tuple | list):
        return type(batch)(_on(device, part) for part in batch)
    return batch


@contextlib.contextmanager
def _writer(directory: str | None) -> Iterator[SummaryWriter | None]:
    """A TensorBoard writer for ``directory``, closed (flushed) at the end; None when not logging."""
    if directory is None:
        yield None
        return
    writer = SummaryWriter(directory)
    try:
        yield writer
    finally:
        writer.close()


def _log(writer: SummaryWriter | None, scalars: dict[str, float], epoch: int) -> None:
    if writer is not None:
        for name, value in scalars.items():
            writer.add_scalar(name, value, epoch)
