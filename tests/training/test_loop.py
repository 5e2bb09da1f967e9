from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from shoprec.config import Config
from shoprec.data.split import EvalSet
from shoprec.models.base import TrainableRecommender, TrainData, TrainerConfig
from shoprec.models.pop import Pop
from shoprec.models.sasrec import SASRec, SASRecConfig
from shoprec.training.fit import fit_model
from shoprec.training.loop import lr_factor, parameter_groups
from shoprec.types import Sequences

N_ITEMS = 12  # evaluation ranks 10 items
# One validation user: history [1], target item 2.
VALIDATION = EvalSet(histories=Sequences.from_lists([0], [[1]]), targets=Sequences.from_lists([0], [[2]]))
TRAIN = Sequences.from_lists([0, 1], [[1, 2, 3], [4, 5]])


class ScriptedConfig(Config):
    train: TrainerConfig = TrainerConfig()


class Scripted(TrainableRecommender[int]):
    """Its n-th validation ranks the target at ``ranks[n]``; it snapshots its weights at every validation."""

    name = "scripted"
    config_class = ScriptedConfig
    config: ScriptedConfig

    def __init__(self, config: ScriptedConfig, ranks: list[int]) -> None:
        super().__init__(config)
        self.ranks = ranks
        self.snapshots: list[dict[str, torch.Tensor]] = []
        self.network = nn.Linear(1, 1)
        self.threads_seen = 0  # torch's thread count during the last loss

    @property
    def trainer_config(self) -> TrainerConfig:
        return self.config.train

    def build(self, data: TrainData) -> nn.Module:
        self.network = nn.Linear(1, 1)
        self.n_items = data.n_items
        return self.network

    def batches(self, sequences: Sequences, batch_size: int, generator: torch.Generator) -> list[int]:
        return [0, 1]

    def loss(self, network: nn.Module, batch: int, generator: torch.Generator) -> torch.Tensor:
        self.threads_seen = torch.get_num_threads()
        return (network(torch.ones(1)).sum() - 100.0) ** 2  # far from its minimum: every step moves the weight

    def score(self, histories: Sequences) -> np.ndarray:
        rank = self.ranks[len(self.snapshots)]
        self.snapshots.append(copy.deepcopy(self.network.state_dict()))
        scores = np.zeros((len(histories), self.n_items), dtype=np.float32)
        scores[:, 3 : 3 + rank - 1] = 2.0  # rank - 1 items above the target
        scores[:, 2] = 1.0
        scores[:, 0] = -np.inf
        return scores

    def _state(self) -> dict[str, np.ndarray]:
        return {}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        pass


def scripted(ranks: list[int], **train: object) -> Scripted:
    return Scripted(ScriptedConfig.model_validate({"train": {"lr": 0.1, "warmup_steps": 0, **train}}), ranks)


def test_early_stopping_waits_patience_validations_and_restores_the_best_weights() -> None:
    model = scripted([3, 1, 2, 2, 2, 2], epochs=20, patience=2)
    report = fit_model(model, TrainData(n_items=N_ITEMS, sequences=TRAIN, validation=VALIDATION))
    assert report.epochs == 4  # best at epoch 2, then two validations without improvement
    assert report.best_epoch == 2
    assert report.best_valid == pytest.approx(1.0)  # NDCG@10 with the target first
    assert [point.epoch for point in report.curve] == [1, 2, 3, 4]
    assert report.curve[0].ndcg == pytest.approx(1 / np.log2(4))
    assert [point.hr for point in report.curve] == [1.0] * 4
    seconds = [point.train_seconds for point in report.curve]
    assert seconds == sorted(seconds) and seconds[-1] == pytest.approx(sum(report.epoch_seconds))
    assert all(point.wall_seconds >= point.train_seconds for point in report.curve)
    torch.testing.assert_close(model.network.state_dict(), model.snapshots[1])
    assert not torch.equal(model.network.weight, model.snapshots[-1]["weight"])


def test_validation_runs_every_eval_every_epochs() -> None:
    report = fit_model(
        scripted([1, 2, 2], epochs=20, patience=2, eval_every=3),
        TrainData(n_items=N_ITEMS, sequences=TRAIN, validation=VALIDATION),
    )
    assert [point.epoch for point in report.curve] == [3, 6, 9]
    assert (report.epochs, report.best_epoch) == (9, 3)


def test_without_validation_every_epoch_runs_and_the_last_weights_stay() -> None:
    model = scripted([], epochs=5)
    report = fit_model(model, TrainData(n_items=N_ITEMS, sequences=TRAIN))
    assert (report.epochs, report.best_epoch, report.best_valid) == (5, None, None)
    assert len(report.epoch_seconds) == len(report.losses) == 5
    assert report.losses[-1] < report.losses[0]


def test_lr_warms_up_linearly_then_decays_to_zero() -> None:
    factors = [lr_factor(step, 10, 100, "cosine") for step in range(100)]
    np.testing.assert_allclose(factors[:10], np.arange(1, 11) / 10)
    assert factors[10] == pytest.approx(1.0)
    assert np.all(np.diff(factors[10:]) <= 0)
    assert factors[-1] < 0.01
    assert lr_factor(55, 10, 100, "linear") == pytest.approx(0.5)


def test_the_trainer_follows_the_schedule_and_logs_it(tmp_path: Path) -> None:
    logs = tmp_path / "tb"
    fit_model(scripted([], epochs=10, warmup_steps=6, tensorboard=str(logs)), TrainData(N_ITEMS, TRAIN))
    events = EventAccumulator(str(logs))
    events.Reload()
    assert {"train/loss", "train/lr", "train/epoch_seconds"} <= set(events.Tags()["scalars"])
    lrs = [event.value for event in events.Scalars("train/lr")]  # at the start of each 2-step epoch
    np.testing.assert_allclose(lrs[:3], np.array([1, 3, 5]) / 6 * 0.1, rtol=1e-5)
    assert max(lrs) == lrs[3] and lrs[3:] == sorted(lrs[3:], reverse=True)


def tiny_sasrec(seed: int = 0, **options: object) -> SASRec:
    """With dropout, so the global RNG is drawn from at every step."""
    config = {
        "item_mode": "id",
        "dim": 8,
        "layers": 1,
        "dropout": 0.3,
        "train": {"epochs": 3, "seed": seed, "threads": 1},
    }
    return SASRec(SASRecConfig.model_validate(config | options))


CYCLE = TrainData(n_items=6, sequences=Sequences.from_lists(range(6), [[1, 2, 3, 4, 5, 1, 2]] * 6))


def test_same_seed_same_weights_other_seed_other_weights_whatever_the_global_rng() -> None:
    weights = []
    for seed in (0, 0, 1):
        torch.rand(seed + 7)  # the global RNG in a different state before each fit
        model = tiny_sasrec(seed)
        fit_model(model, CYCLE)
        weights.append(model._built().state_dict())
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)
    assert not torch.equal(weights[0]["items.ids.weight"], weights[2]["items.ids.weight"])


def test_fit_gives_back_the_thread_count_and_global_rng_state_it_found() -> None:
    before = torch.get_num_threads()
    model = scripted([], epochs=2, threads=1 if before > 1 else 2)
    rng = torch.get_rng_state()
    fit_model(model, TrainData(N_ITEMS, TRAIN))
    fit_model(tiny_sasrec(), CYCLE)  # initialisation and dropout draw from the global RNG
    assert model.threads_seen == model.config.train.threads  # the configured count, while training
    assert torch.get_num_threads() == before
    assert torch.equal(torch.get_rng_state(), rng)


class Counting(nn.Module):
    """A wrapper as DDP or Opacus put around a network: the loss must call it, not the network inside."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, *args: torch.Tensor) -> object:
        self.calls += 1
        return self.inner(*args)


def test_the_loss_goes_through_the_module_the_wrap_hook_returns() -> None:
    wrappers: list[Counting] = []

    def wrap(network: nn.Module) -> nn.Module:
        wrappers.append(Counting(network))
        return wrappers[-1]

    model = tiny_sasrec()
    before = fit_model(tiny_sasrec(), CYCLE)
    report = fit_model(model, CYCLE, wrap=wrap)
    (wrapper,) = wrappers
    n_batches = len(model.batches(CYCLE.sequences, model.config.train.batch_size, torch.Generator()))
    assert wrapper.calls == n_batches * report.epochs > 0
    assert wrapper.inner is model._built()  # the model scores with the network it built, now trained
    assert report.losses == pytest.approx(before.losses)  # the wrapper changes nothing but who is called


def test_a_closed_form_model_has_no_network_to_wrap() -> None:
    with pytest.raises(ValueError, match="no network to wrap"):
        fit_model(Pop(), TrainData(n_items=6, sequences=TRAIN), wrap=Counting)


def test_no_weight_decay_on_embeddings_layer_norms_or_biases() -> None:
    model = SASRec(SASRecConfig(item_mode="id", dim=8, layers=1))
    network = model.build(TrainData(n_items=6, sequences=TRAIN))
    decayed, plain = parameter_groups(network, 0.1)
    names = {id(p): name for name, p in network.named_parameters()}
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert {names[id(p)] for p in decayed["params"]} == {
        f"blocks.0.{layer}.weight" for layer in ("query", "key", "value", "out", "ffn.0", "ffn.2")
    }
    assert len(decayed["params"]) + len(plain["params"]) == len(names)


def test_fit_model_fits_closed_form_models_directly_and_reports_progress() -> None:
    pop = Pop()
    report = fit_model(pop, TrainData(n_items=6, sequences=TRAIN))
    assert report.epochs == 0 and pop.n_items == 6
    calls: list[tuple[str, int, int]] = []
    fit_model(scripted([], epochs=3), TrainData(N_ITEMS, TRAIN), progress=lambda *call: calls.append(call))
    assert calls == [("scripted training (epochs)", epoch, 3) for epoch in (1, 2, 3)]
