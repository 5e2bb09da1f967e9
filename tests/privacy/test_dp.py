from __future__ import annotations

import math

import pytest
from opacus.accountants import RDPAccountant
from pydantic import ValidationError

from shoprec.privacy.dp import PrivacyConfig, epsilon_spent, noise_multiplier
from shoprec.training.config import RunConfig


def test_epsilon_spent_matches_opacus_accountant_stepped_one_step_at_a_time() -> None:
    accountant = RDPAccountant()
    for _ in range(500):
        accountant.step(noise_multiplier=1.1, sample_rate=0.02)
    expected = accountant.get_epsilon(delta=1e-5)
    assert epsilon_spent(1.1, 0.02, 500, 1e-5, "rdp") == pytest.approx(expected, rel=1e-9)
    assert 0 < expected < 10  # a real, finite budget: the comparison is not between two infinities


def test_more_noise_or_fewer_steps_spend_less() -> None:
    base = epsilon_spent(1.0, 0.01, 1000, 1e-5, "rdp")
    assert epsilon_spent(2.0, 0.01, 1000, 1e-5, "rdp") < base
    assert epsilon_spent(1.0, 0.01, 100, 1e-5, "rdp") < base
    assert epsilon_spent(0.0, 0.01, 100, 1e-5, "rdp") == math.inf
    assert epsilon_spent(1.0, 0.01, 0, 1e-5, "rdp") == 0.0


@pytest.mark.parametrize("target", [1.0, 4.0, 8.0])
def test_the_noise_multiplier_reaches_the_target_epsilon_without_overshooting(target: float) -> None:
    sigma = noise_multiplier(target, 1e-4, 0.02, 200, "rdp")
    spent = epsilon_spent(sigma, 0.02, 200, 1e-4, "rdp")
    assert spent <= target
    assert spent == pytest.approx(target, abs=0.02)


def test_delta_auto_is_one_over_the_users_and_a_larger_delta_is_refused() -> None:
    assert PrivacyConfig(epsilon=4).resolve_delta(2000) == pytest.approx(1 / 2000)
    assert PrivacyConfig(epsilon=4, delta=1e-6).resolve_delta(2000) == 1e-6
    with pytest.raises(ValueError, match="delta"):
        PrivacyConfig(epsilon=4, delta=0.01).resolve_delta(2000)


def test_an_unknown_privacy_key_is_an_error_naming_it() -> None:
    with pytest.raises(ValidationError, match="epsilonn"):
        RunConfig.model_validate({"model": "sasrec", "privacy": {"epsilonn": 4.0}})
    with pytest.raises(ValidationError, match="max_grad_nrom"):
        RunConfig.model_validate({"model": "sasrec", "privacy": {"epsilon": 4.0, "max_grad_nrom": 1.0}})


def test_a_search_grid_under_privacy_is_refused() -> None:
    with pytest.raises(ValidationError, match="search"):
        RunConfig.model_validate({"model": "sasrec", "privacy": {"epsilon": 4.0}, "search": {"dim": [32, 64]}})
