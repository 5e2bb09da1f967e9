"""How differently user groups are served: the gap between the best- and the worst-served group, with a bootstrap
confidence interval corrected for the number of groups, so a gap that is sampling noise is not reported as one
(issue 13's group audit)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

BOOTSTRAP_SAMPLES = 1000
_CHUNK = 50  # replicates drawn at once: memory stays at 50 x the largest group


@dataclass(frozen=True)
class GroupGap:
    """``metric``'s mean in the best (``best``) and worst (``worst``) served group of ``kind`` and their difference,
    with its ``confidence`` interval over all pairs of the kind's groups (see ``group_gap``)."""

    kind: str
    metric: str
    best: str
    worst: str
    best_mean: float
    worst_mean: float
    gap: float
    low: float
    high: float
    confidence: float

    @property
    def significant(self) -> bool:
        """The interval leaves out 0: the worst group is served worse beyond sampling noise."""
        return self.low > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def group_gap(
    kind: str,
    metric: str,
    values: np.ndarray,
    groups: Mapping[str, np.ndarray],
    confidence: float = 0.95,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> GroupGap:
    """The gap of per-user ``values`` between the groups (name -> boolean mask over users) with the highest and the
    lowest mean. The interval is gap +- z x the bootstrap standard deviation of that difference (users resampled
    within each group), with z Bonferroni-corrected over every pair of groups: picking the extremes among 21
    occupations is picking among 210 pairs, and an uncorrected interval would call that noise a gap."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    values = np.asarray(values, dtype=np.float64)
    members = {name: values[np.asarray(mask, dtype=bool)] for name, mask in groups.items()}
    members = {name: group for name, group in members.items() if len(group)}
    if len(members) < 2:
        raise ValueError(f"a gap needs two non-empty groups, got {sorted(members)}")
    means = {name: float(group.mean()) for name, group in members.items()}
    best, worst = max(means, key=means.__getitem__), min(means, key=means.__getitem__)
    rng = np.random.default_rng(seed)
    differences = _resampled_means(members[best], samples, rng) - _resampled_means(members[worst], samples, rng)
    pairs = len(members) * (len(members) - 1) // 2
    z = NormalDist().inv_cdf(1 - (1 - confidence) / (2 * pairs))
    gap = means[best] - means[worst]
    spread = z * float(differences.std(ddof=1))
    return GroupGap(kind, metric, best, worst, means[best], means[worst], gap, gap - spread, gap + spread, confidence)


def _resampled_means(group: np.ndarray, samples: int, rng: np.random.Generator) -> np.ndarray:
    """(samples,) means of the group resampled with replacement."""
    means = np.empty(samples)
    for start in range(0, samples, _CHUNK):
        stop = min(start + _CHUNK, samples)
        means[start:stop] = group[rng.integers(0, len(group), size=(stop - start, len(group)))].mean(axis=1)
    return means
