"""Membership inference: does a model's loss tell the users it was trained on from users it never saw?

The attack is the loss-threshold attack (Yeom et al., 2018): a user whose own sequence the model predicts well is
guessed a member. Its strength over every threshold at once is the AUC of (minus) the per-user loss separating
members from the held-out users: 0.5 is chance, 1.0 perfect separation. DP-SGD at epsilon bounds any attack's
true-positive rate by e^epsilon times its false-positive rate plus delta, so the AUC is an empirical floor on
leakage, not a proof of its absence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp
from scipy.stats import rankdata

from shoprec.data.dataset import Dataset
from shoprec.data.split import hold_out_last
from shoprec.models.artifact import Manifest
from shoprec.models.base import Recommender
from shoprec.privacy.erasure import erasure_tag
from shoprec.types import Sequences

POSITIONS = 5  # each user's latest training items predicted from what precedes them: the loss is their mean
BOOTSTRAP = 1000
CHUNK = 1024  # users scored at once


@dataclass(frozen=True)
class MembershipAudit:
    """AUC of the loss-threshold attack with a percentile bootstrap interval, and what it was computed on."""

    auc: float
    low: float  # 2.5th percentile of the bootstrap
    high: float  # 97.5th percentile
    members: int
    non_members: int
    mean_loss_members: float
    mean_loss_non_members: float
    positions: int
    bootstrap: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def attack_auc(member_losses: np.ndarray, non_member_losses: np.ndarray) -> float:
    """P(a member's loss < a non-member's), ties counting one half: the Mann-Whitney AUC of minus the loss."""
    if len(member_losses) == 0 or len(non_member_losses) == 0:
        raise ValueError("the attack AUC needs at least one member and one non-member")
    ranks = rankdata(-np.concatenate([member_losses, non_member_losses]))  # higher rank: lower loss
    n_in, n_out = len(member_losses), len(non_member_losses)
    return float((ranks[:n_in].sum() - n_in * (n_in + 1) / 2) / (n_in * n_out))


def bootstrap_interval(
    member_losses: np.ndarray, non_member_losses: np.ndarray, rounds: int = BOOTSTRAP, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of the AUC, members and non-members resampled apart (stratified)."""
    rng = np.random.default_rng(seed)
    aucs = [
        attack_auc(rng.choice(member_losses, len(member_losses)), rng.choice(non_member_losses, len(non_member_losses)))
        for _ in range(rounds)
    ]
    low, high = np.percentile(aucs, [2.5, 97.5])
    return float(low), float(high)


def user_losses(model: Recommender, sequences: Sequences, positions: int = POSITIONS, chunk: int = CHUNK) -> np.ndarray:
    """(R,) each row's mean cross-entropy (softmax over the model's scores of every item) of its latest
    ``positions`` items, each predicted from the items before it; NaN for a row with no item that has one."""
    lengths = sequences.lengths()
    total = np.zeros(len(sequences))
    counted = np.zeros(len(sequences))
    for back in range(1, positions + 1):
        cuts = lengths - back
        rows = np.flatnonzero(cuts >= 1)
        prefixes, tails = sequences.take(rows).split_at(cuts[rows])
        targets = tails.items[tails.indptr[:-1]]  # the first item after each prefix
        for start in range(0, len(rows), chunk):
            part = slice(start, start + chunk)
            scores = model.score(prefixes.take(np.arange(len(rows))[part])).astype(np.float64)  # (B, I)
            picked = scores[np.arange(len(scores)), targets[part]]
            total[rows[part]] += logsumexp(scores[:, 1:], axis=1) - picked  # column 0 is padding
            counted[rows[part]] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counted > 0, total / np.maximum(counted, 1), np.nan)


def held_out_tags(manifest: Manifest) -> set[str]:
    """The erasure tags of the users the manifest's model was not trained on; ValueError when it names none."""
    if manifest.held_out is None or not manifest.held_out.tags:
        raise ValueError(
            "this model directory names no held-out users, so there is nobody to compare its members with: "
            "train it with holdout_users > 0 in the run config (e.g. holdout_users = 0.1)"
        )
    return set(manifest.held_out.tags)


def audit_membership(
    model: Recommender,
    manifest: Manifest,
    dataset: Dataset,
    positions: int = POSITIONS,
    rounds: int = BOOTSTRAP,
    seed: int = 0,
) -> MembershipAudit:
    """The attack on the model of ``manifest`` over ``dataset``, the very data it was trained from: members are
    its users the manifest does not name as held out. Each user's last item (members' validation target) is cut
    first, so members are scored on exactly what they were trained on."""
    tags = held_out_tags(manifest)
    if dataset.fingerprint() != manifest.data_fingerprint:
        raise ValueError(
            f"the data (fingerprint {dataset.fingerprint()[:12]}) is not the data the model was trained from "
            f"({manifest.data_fingerprint[:12]}); load it with the same pseudonym key"
        )
    held = np.array([False] + [erasure_tag(user) in tags for user in dataset.users.ids])  # by user index
    if held.sum() != len(tags):
        raise ValueError(
            f"{len(tags) - held.sum()} held-out user(s) are not in the data: was it loaded with another key?"
        )
    trained, _ = hold_out_last(dataset.sequences)
    losses = user_losses(model, trained, positions)
    out = held[trained.users]
    member, non_member = losses[~out], losses[out]
    member, non_member = member[~np.isnan(member)], non_member[~np.isnan(non_member)]
    low, high = bootstrap_interval(member, non_member, rounds, seed)
    return MembershipAudit(
        auc=attack_auc(member, non_member),
        low=low,
        high=high,
        members=len(member),
        non_members=len(non_member),
        mean_loss_members=float(member.mean()),
        mean_loss_non_members=float(non_member.mean()),
        positions=positions,
        bootstrap=rounds,
        seed=seed,
    )
