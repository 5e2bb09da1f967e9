"""DP-SGD in the one Trainer: each user's gradient clipped, Gaussian noise added, the budget written down."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from shoprec.data.dataset import Dataset
from shoprec.data.split import hold_out_last
from shoprec.models.artifact import load_artifact, read_manifest, save_artifact
from shoprec.models.base import TrainData
from shoprec.models.sasrec import SASRec, SASRecConfig
from shoprec.privacy.dp import PrivacyConfig, epsilon_spent
from shoprec.training.config import RunConfig
from shoprec.training.experiment import train_model
from shoprec.training.fit import fit_model
from shoprec.training.private import PrivatePlan, private_step
from shoprec.types import Sequences

N_ITEMS = 30
OPTIONS = {"item_mode": "id", "output": "separate", "train_positions": 3, "dim": 16, "max_len": 8, "dropout": 0.0}


def sequences(n_users: int = 40, seed: int = 0) -> Sequences:
    rng = np.random.default_rng(seed)
    rows = [list(rng.integers(1, N_ITEMS, size=rng.integers(2, 10))) for _ in range(n_users)]
    return Sequences.from_lists(list(range(1, n_users + 1)), rows)


def dp_model(**train: object) -> SASRec:
    options = {**OPTIONS, "train": {"warmup_steps": 0, "threads": 1, **train}}
    return SASRec(SASRecConfig.model_validate(options))


def plan(sigma: float, clip: float, n_users: int) -> PrivatePlan:
    config = PrivacyConfig(epsilon=1.0, max_grad_norm=clip)
    return PrivatePlan(config, n_users, sample_rate=0.5, steps_per_epoch=2, epochs=1, delta=1e-3, sigma=sigma)


def dp_gradient(sigma: float, clip: float) -> tuple[list[torch.Tensor], list[torch.Tensor], list[float]]:
    """(gradient the DP optimizer steps with, sum of clipped per-user gradients / expected batch, per-user norms),
    the latter two computed by hand, one user at a time, on a copy of the same network."""
    model, data = dp_model(), sequences()
    with torch.random.fork_rng():  # the same initial weights on every run: the norms below depend on them
        torch.manual_seed(0)
        network = model.build(TrainData(n_items=N_ITEMS, sequences=data, private=True))
    reference = copy.deepcopy(network)
    (batch,) = model.batches(data, len(data), torch.Generator().manual_seed(0))
    private = plan(sigma, clip, len(data))
    module = private.wrap(network)
    optimizer = private.optimizer(torch.optim.SGD(network.parameters(), lr=0.0), seed=0)
    private_step(model, module, optimizer, batch, torch.Generator())
    noised = [p.grad.clone() for p in network.parameters()]
    module.remove_hooks()
    model._network = reference  # sample_losses reads the trained-items mask of the model's own network
    clipped = [torch.zeros_like(p) for p in reference.parameters()]
    norms = []
    for row in range(len(batch[0])):
        reference.zero_grad()
        model.sample_losses(
            reference, (batch[0][row : row + 1], batch[1][row : row + 1]), torch.Generator()
        ).sum().backward()
        grads = [p.grad.clone() for p in reference.parameters()]
        norm = float(torch.sqrt(sum((g**2).sum() for g in grads)))
        norms.append(norm)
        for total, grad in zip(clipped, grads, strict=True):
            total += grad * min(1.0, clip / (norm + 1e-6))
    expected_batch = round(private.sample_rate * private.n_users)
    return noised, [total / expected_batch for total in clipped], norms


def test_without_noise_the_step_uses_the_sum_of_each_users_clipped_gradient() -> None:
    noised, clipped, norms = dp_gradient(sigma=0.0, clip=0.05)
    assert min(norms) > 0.05  # every user is clipped, so an unclipped sum would differ
    for got, want in zip(noised, clipped, strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-4)


def test_clipping_bounds_each_users_contribution_not_the_batch() -> None:
    noised, clipped, norms = dp_gradient(sigma=0.0, clip=100.0)  # nobody clipped: the plain mean gradient
    assert max(norms) < 100.0
    for got, want in zip(noised, clipped, strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-4)


def test_noise_of_the_planned_scale_is_added_to_the_clipped_sum() -> None:
    sigma, clip = 3.0, 0.05
    noised, clipped, _ = dp_gradient(sigma, clip)
    noise = torch.cat([(got - want).flatten() for got, want in zip(noised, clipped, strict=True)])
    expected_std = sigma * clip / 20  # expected batch: 0.5 x 40 users
    assert float(noise.std()) == pytest.approx(expected_std, rel=0.1)
    assert abs(float(noise.mean())) < 0.1 * expected_std


def test_a_users_loss_does_not_depend_on_who_else_is_in_the_batch() -> None:
    model, data = dp_model(), sequences()
    network = model.build(TrainData(n_items=N_ITEMS, sequences=data, private=True))
    (whole,) = model.batches(data, len(data), torch.Generator().manual_seed(0))
    (part,) = model.batches(data.take([3]), 1, torch.Generator())
    together = model.sample_losses(network, whole, torch.Generator())
    row = int(np.flatnonzero([torch.equal(r[: len(part[0][0])], part[0][0]) for r in whole[0]])[0])
    torch.testing.assert_close(model.sample_losses(network, part, torch.Generator())[0], together[row])


def test_poisson_batches_take_each_user_at_most_once_a_step_in_varying_numbers() -> None:
    data = sequences(200)
    private = PrivatePlan(
        PrivacyConfig(epsilon=1.0), 200, sample_rate=0.1, steps_per_epoch=10, epochs=1, delta=1e-3, sigma=1.0
    )
    batches = private.batches(dp_model(), data, torch.Generator().manual_seed(0))
    sizes = [len(inputs) for inputs, _ in batches]
    assert len(set(sizes)) > 1  # Poisson, not fixed-size
    assert 10 < np.mean(sizes) < 30  # about 0.1 x 200
    for inputs, _ in batches:
        assert len({tuple(row.tolist()) for row in inputs}) <= len(inputs)


def test_a_private_fit_runs_every_epoch_without_validation_and_reports_its_budget() -> None:
    data, validation = hold_out_last(sequences(100))
    model = dp_model(epochs=3, batch_size=20, patience=1)  # would stop after one validation without gain
    report = fit_model(
        model, TrainData(n_items=N_ITEMS, sequences=data, validation=validation), privacy=PrivacyConfig(epsilon=2.0)
    )
    assert report.epochs == 3 and report.curve == ()
    guarantee = report.privacy
    assert guarantee is not None
    assert (guarantee.sample_rate, guarantee.steps, guarantee.delta) == (0.2, 15, pytest.approx(0.01))
    assert guarantee.epsilon <= 2.0
    assert guarantee.epsilon == pytest.approx(epsilon_spent(guarantee.noise_multiplier, 0.2, 15, 0.01, "rdp"))
    assert not model.popularity.any()  # no training counts kept outside the noised gradients


def test_two_rows_of_one_user_are_refused() -> None:
    data = Sequences.from_lists([1, 1, 2], [[1, 2], [3, 4], [5, 6]])
    with pytest.raises(ValueError, match="one training row per user"):
        fit_model(dp_model(epochs=1), TrainData(n_items=N_ITEMS, sequences=data), privacy=PrivacyConfig(epsilon=1.0))


def test_a_tied_model_cannot_be_trained_privately() -> None:
    model = SASRec(SASRecConfig.model_validate({**OPTIONS, "output": "tied", "train": {"epochs": 1}}))
    with pytest.raises(ValueError, match="separate"):
        fit_model(model, TrainData(n_items=N_ITEMS, sequences=sequences()), privacy=PrivacyConfig(epsilon=1.0))


def test_a_dp_fit_writes_its_budget_and_held_out_users_to_the_manifest(beauty: Dataset, tmp_path: Path) -> None:
    run = RunConfig.model_validate(
        {
            "model": "sasrec",
            "options": {**OPTIONS, "max_len": 10, "train": {"epochs": 1, "batch_size": 256, "threads": 1}},
            "privacy": {"epsilon": 4.0, "max_grad_norm": 0.5},
            "holdout_users": 0.1,
        }
    )
    selection, manifest = train_model(beauty, run)
    save_artifact(tmp_path / "model", selection.model, beauty.items, manifest)
    loaded = read_manifest(tmp_path / "model").privacy
    assert loaded is not None and loaded == manifest.privacy
    assert loaded.epsilon <= 4.0 and loaded.max_grad_norm == 0.5
    held_out = read_manifest(tmp_path / "model").held_out
    assert held_out is not None and 100 < len(held_out.tags) < 300  # about 10% of 2,000
    assert loaded.n_users == beauty.n_users - len(held_out.tags)
    assert loaded.delta == pytest.approx(1 / loaded.n_users)
    assert loaded.sample_rate == pytest.approx(256 / loaded.n_users)
    _, _, again = load_artifact(tmp_path / "model")
    assert again.privacy == loaded
