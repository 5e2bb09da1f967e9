from __future__ import annotations

import numpy as np
import pytest

from shoprec.evaluation.membership import attack_auc, bootstrap_interval, user_losses
from shoprec.models.base import TrainData
from shoprec.models.pop import Pop
from shoprec.types import Sequences


def test_perfectly_separated_losses_give_auc_one_and_reversed_zero() -> None:
    members, others = np.array([0.1, 0.2, 0.3]), np.array([0.5, 0.9])
    assert attack_auc(members, others) == 1.0
    assert attack_auc(others, members) == 0.0


def test_identical_losses_give_one_half() -> None:
    assert attack_auc(np.full(5, 2.0), np.full(7, 2.0)) == 0.5


def test_auc_is_the_share_of_member_non_member_pairs_ordered_right() -> None:
    # pairs (member, other): (1, 2) right, (3, 2) wrong, (2, 2) a tie -> (1 + 0 + 0.5) / 3
    assert attack_auc(np.array([1.0, 3.0, 2.0]), np.array([2.0])) == pytest.approx(0.5)


def test_the_bootstrap_interval_brackets_the_auc_and_narrows_with_more_users() -> None:
    rng = np.random.default_rng(0)
    small = (rng.normal(0.0, 1, 50), rng.normal(0.5, 1, 50))
    large = (rng.normal(0.0, 1, 2000), rng.normal(0.5, 1, 2000))
    low, high = bootstrap_interval(*small, rounds=200)
    assert low < attack_auc(*small) < high
    low_l, high_l = bootstrap_interval(*large, rounds=200)
    assert high_l - low_l < (high - low) / 3
    assert low_l < 0.64 < high_l  # true AUC of N(0,1) vs N(0.5,1): Phi(0.5 / sqrt 2) = 0.638


def test_user_losses_average_the_cross_entropy_of_the_latest_items() -> None:
    train = Sequences.from_lists([1], [[1, 1, 1, 2]])  # popularity: item 1 three times, item 2 once
    pop = Pop()
    pop.fit(TrainData(n_items=3, sequences=train))
    histories = Sequences.from_lists([1, 2, 3], [[1, 2], [2, 1, 2], [1]])
    scores = pop.score(histories)[0]  # the same popularity scores for every history
    log_norm = np.log(np.exp(scores[1:]).sum())
    nll = {item: log_norm - scores[item] for item in (1, 2)}
    losses = user_losses(pop, histories, positions=2)
    assert losses[0] == pytest.approx(nll[2])  # only item 2 has a history before it
    assert losses[1] == pytest.approx((nll[1] + nll[2]) / 2)
    assert np.isnan(losses[2])  # a single item has nothing to be predicted from
