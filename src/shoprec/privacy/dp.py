"""Differential privacy for training: the ``[privacy]`` block of a run config and the accounting of DP-SGD.

The unit of privacy is a user: one training example is one user's whole sequence, each step takes every user
independently with probability ``sample_rate`` (Poisson sampling, which the RDP accountant assumes), each user's
gradient is clipped to ``max_grad_norm`` and Gaussian noise of standard deviation ``noise_multiplier *
max_grad_norm`` is added to the sum. The accountant turns (noise multiplier, sample rate, steps) into the
(epsilon, delta) a model directory reports.
"""

from __future__ import annotations

import math
from typing import Literal

from opacus.accountants import create_accountant
from opacus.accountants.utils import get_noise_multiplier
from pydantic import Field

from shoprec.config import Config

Accountant = Literal["rdp", "prv"]


class PrivacyConfig(Config):
    """``[privacy]`` of a run config: train with DP-SGD to reach ``epsilon`` at ``delta`` over the whole fit."""

    epsilon: float = Field(gt=0)  # target epsilon of the whole fit, every epoch included
    delta: float | Literal["auto"] = "auto"  # "auto": 1 / number of training users
    max_grad_norm: float = Field(default=1.0, gt=0)  # L2 clip of each user's gradient
    accountant: Accountant = "rdp"

    def resolve_delta(self, n_users: int) -> float:
        """``delta``, or 1 / ``n_users`` for "auto"; a delta of 1 / n or more would allow publishing a user."""
        if n_users < 1:
            raise ValueError("differentially private training needs at least one user")
        delta = 1.0 / n_users if self.delta == "auto" else self.delta
        if not 0 < delta <= 1.0 / n_users:
            raise ValueError(f"delta {delta} must be in (0, 1/{n_users}]: 1 / number of training users or less")
        return delta


class PrivacyGuarantee(Config):
    """What a DP fit spent, as the model directory's manifest records it (``Manifest.privacy``)."""

    epsilon: float  # spent, per the accountant, for the steps actually taken
    delta: float
    target_epsilon: float
    noise_multiplier: float  # noise std / max_grad_norm
    max_grad_norm: float
    sample_rate: float  # probability a user is in a step's batch
    steps: int
    epochs: int
    n_users: int  # users sampled from (the training examples)
    accountant: Accountant
    sampling: Literal["poisson"] = "poisson"
    unit: Literal["user"] = "user"  # one example = one user's sequence


def noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int, accountant: Accountant) -> float:
    """The smallest noise multiplier (to Opacus's binary-search tolerance, 0.01 in epsilon) that keeps ``steps``
    Poisson-sampled steps within (``epsilon``, ``delta``)."""
    return float(
        get_noise_multiplier(
            target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps, accountant=accountant
        )
    )


def epsilon_spent(sigma: float, sample_rate: float, steps: int, delta: float, accountant: Accountant) -> float:
    """Epsilon at ``delta`` after ``steps`` steps of the subsampled Gaussian mechanism; infinite without noise."""
    if sigma <= 0:
        return math.inf
    if steps == 0:
        return 0.0
    tracker = create_accountant(mechanism=accountant)
    tracker.history = [(sigma, sample_rate, steps)]
    return float(tracker.get_epsilon(delta=delta))
