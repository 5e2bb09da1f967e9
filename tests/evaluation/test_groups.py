"""The group audit's gap and its bootstrap interval."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from shoprec.evaluation.groups import group_gap


def test_the_gap_is_between_the_best_and_worst_group_means() -> None:
    values = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.5])
    groups = {"a": np.arange(8) < 2, "b": (np.arange(8) >= 2) & (np.arange(8) < 5), "c": np.arange(8) >= 5}
    gap = group_gap("history_length", "HR@10", values, groups)
    assert (gap.best, gap.worst) == ("a", "c")
    assert gap.best_mean == 1.0 and gap.worst_mean == pytest.approx(0.5 / 3)
    assert gap.gap == pytest.approx(1 - 0.5 / 3)
    assert gap.low <= gap.gap <= gap.high


def test_a_real_gap_is_significant_and_noise_is_not() -> None:
    rng = np.random.default_rng(1)
    served_well, served_badly = rng.random(2_000) < 0.30, rng.random(2_000) < 0.20
    groups = {"long": np.arange(4_000) < 2_000, "short": np.arange(4_000) >= 2_000}
    real = group_gap("history_length", "HR@10", np.concatenate([served_well, served_badly]), groups)
    assert real.significant and 0.05 < real.low < real.high < 0.15
    same = rng.random(4_000) < 0.25  # both groups drawn from one distribution
    noise = group_gap("history_length", "HR@10", same, groups)
    assert noise.gap > 0 and not noise.significant and noise.low < 0 < noise.high


def test_the_interval_is_reproducible_and_needs_two_groups() -> None:
    values = np.linspace(0, 1, 50)
    groups = {"low": values < 0.5, "high": values >= 0.5, "empty": np.zeros(50, dtype=bool)}
    assert group_gap("k", "m", values, groups) == group_gap("k", "m", values, groups)
    with pytest.raises(ValueError, match="two non-empty groups"):
        group_gap("k", "m", values, {"all": np.ones(50, dtype=bool), "empty": groups["empty"]})


def test_the_extremes_of_many_groups_drawn_alike_are_not_called_a_gap() -> None:
    """21 groups of 100 users, all hit with probability 0.1: the best and the worst differ by chance alone, and the
    interval, corrected for choosing them among 210 pairs, says so (an uncorrected 95% interval would not)."""
    rng = np.random.default_rng(3)
    values = rng.random(2_100) < 0.1
    groups = {f"occupation {g}": np.arange(2_100) // 100 == g for g in range(21)}
    gap = group_gap("occupation", "HR@10", values, groups)
    assert gap.gap > 0.1 and not gap.significant
    uncorrected = gap.gap - 1.96 * (gap.gap - gap.low) / NormalDist().inv_cdf(1 - 0.05 / 420)
    assert uncorrected > 0  # what the interval would have claimed without the correction
