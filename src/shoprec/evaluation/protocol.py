"""The one evaluation path for validation and test: full ranking over all items, seen items excluded.

No sampled negatives and no user caps: every evaluated user is scored against the whole catalog, in chunks of
users so memory stays at chunk_size x n_items whatever the number of users.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict, runtime_checkable

import numpy as np
import pandas as pd

from shoprec.data.dataset import Dataset
from shoprec.data.split import EvalSet
from shoprec.evaluation.beyond import (
    calibration_kl,
    coverage,
    exposure_shares,
    gini,
    intra_list_diversity,
    mean_popularity,
    novelty,
    popularity_groups,
    popularity_head,
    provider_gini,
    small_providers,
)
from shoprec.evaluation.groups import GroupGap, group_gap
from shoprec.evaluation.metrics import hits_matrix, n_relevant, per_user_metrics, repeated_targets
from shoprec.types import PADDING, Sequences

# Lower bounds of the history-length buckets; a history shorter than the first bound falls in bucket "0".
_LENGTH_BOUNDS = (1, 5, 10, 20, 50)
_LENGTH_NAMES = ("0", "1-4", "5-9", "10-19", "20-49", "50+")
_SLICE_METRICS = ("HR", "NDCG")  # per user group; their gaps are audited at k = 10 (or the largest cut-off)
HEAD_SHARE = 0.2  # head = the top 20% of items by training popularity
TAIL_SHARE = 0.5  # tail = the bottom half (items never seen in training always among them); mid = the rest
_EXPOSURE_GROUPS = ("Head", "Mid", "Tail")


class Scorer(Protocol):
    """Anything that scores all items for a batch of histories: (B, n_items), column 0 = padding."""

    def score(self, histories: Sequences) -> np.ndarray: ...


@runtime_checkable
class Ranking(Protocol):
    """Anything that ranks for a batch of histories itself (``shoprec.ranking``'s composed pipeline, re-rankers
    included): (B, k) item indices best first, PADDING where fewer than ``k`` items are allowed."""

    def top(self, histories: Sequences, k: int, exclude_seen: bool) -> np.ndarray: ...


@dataclass(frozen=True)
class SliceResult:
    """Mean metrics over one group of users, e.g. kind="history_length", name="5-9"."""

    kind: str
    name: str
    n_users: int
    metrics: dict[str, float]


@dataclass(frozen=True, eq=False)  # eq=False: per-user arrays make field-wise == ambiguous
class EvalResult:
    """Mean metrics over ``n_users``, per-slice means, and the per-user arrays behind them.

    ``n_repeat_targets`` counts targets already in their user's history: excluded as seen, they count as misses.
    ``gaps``: per kind of user group (history length, and attributes where the data has them), the best- against
    the worst-served group, with bootstrap intervals.
    """

    metrics: dict[str, float]
    n_users: int
    slices: list[SliceResult] = field(default_factory=list)
    per_user: dict[str, np.ndarray] = field(default_factory=dict)
    n_repeat_targets: int = 0
    gaps: list[GroupGap] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: plain floats and ints, without the per-user arrays."""
        return {
            "n_users": int(self.n_users),
            "n_repeat_targets": int(self.n_repeat_targets),
            "metrics": {name: float(value) for name, value in self.metrics.items()},
            "slices": [
                {
                    "kind": s.kind,
                    "name": s.name,
                    "n_users": int(s.n_users),
                    "metrics": {name: float(value) for name, value in s.metrics.items()},
                }
                for s in self.slices
            ],
            "gaps": [gap.to_dict() for gap in self.gaps],
        }

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> EvalResult:
        """Back from ``to_dict`` (per-user arrays are not stored), e.g. to render a published JSON result."""
        return cls(
            metrics=dict(payload["metrics"]),
            n_users=int(payload["n_users"]),
            slices=[
                SliceResult(s["kind"], s["name"], int(s["n_users"]), dict(s["metrics"])) for s in payload["slices"]
            ],
            n_repeat_targets=int(payload["n_repeat_targets"]),
            gaps=[GroupGap(**gap) for gap in payload.get("gaps", [])],  # results written before the audit have none
        )


def top_k(
    scores: np.ndarray, k: int, exclude: Sequences | None = None, allowed: np.ndarray | None = None
) -> np.ndarray:
    """(B, k) int64 item indices by descending score; padding, each row's ``exclude`` items and, with ``allowed``
    ((B, n_items) bool), the items it marks False are masked.

    Works on a copy: a model may hand back a view of its own state, which masking in place would corrupt.
    The order is total: score descending, then lower item index, so the result never depends on how
    ``partition`` splits ties. Slots beyond a row's valid items (everything else masked or scored -inf)
    hold PADDING (0), never a masked item; callers that show lists drop them.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (B, n_items), got shape {scores.shape}")
    n_rows, width = scores.shape
    if not 1 <= k < width:
        raise ValueError(f"k={k} must be in 1..{width - 1} (the number of real items)")
    masked = scores.astype(np.result_type(scores.dtype, np.float32), copy=True)
    if np.isnan(masked).any():
        raise ValueError("scores contain NaN; a model must give every item a number")
    masked[:, PADDING] = -np.inf
    if exclude is not None:
        if len(exclude) != n_rows:
            raise ValueError(f"exclude has {len(exclude)} rows for {n_rows} score rows")
        masked[np.repeat(np.arange(n_rows), exclude.lengths()), exclude.items] = -np.inf
    if allowed is not None:
        np.copyto(masked, -np.inf, where=~allowed)  # a third of np.where's time over 12k items
    cut = np.partition(masked, width - k, axis=1)[:, width - k, None]  # (B, 1): each row's k-th best score
    kept = masked >= cut  # the best k of each row, and every item tied with its k-th
    if np.count_nonzero(kept) > n_rows * k:  # a row has more tied at its cut than fit: keep the lowest indices
        counts = np.count_nonzero(kept, axis=1)
        for row in np.flatnonzero(counts > k):
            tied = np.flatnonzero(masked[row] == cut[row])
            kept[row, tied[k - (counts[row] - len(tied)) :]] = False
    rows = np.arange(n_rows)[:, None]
    candidates = np.flatnonzero(kept).reshape(n_rows, k) - width * rows
    values = masked[rows, candidates]
    order = np.lexsort((candidates, -values), axis=1)
    ranked = candidates[rows, order].astype(np.int64)
    ranked[values[rows, order] == -np.inf] = PADDING
    return ranked


def rank(
    model: Scorer | Ranking,
    histories: Sequences,
    k: int,
    chunk_size: int = 1024,
    exclude_seen: bool = True,
    on_chunk: Callable[[int], None] | None = None,
    n_items: int | None = None,
) -> np.ndarray:
    """(R, k) top-k item indices per history row, scoring ``chunk_size`` rows at a time.

    ``on_chunk`` is called after each chunk with the number of rows ranked so far (for a progress bar).
    ``n_items``, when given, is the score width every chunk must have; otherwise the first chunk sets it.
    See ``top_k`` for the order and the PADDING fill of short rows.
    """
    if chunk_size < 1 or k < 1:
        raise ValueError(f"chunk_size ({chunk_size}) and k ({k}) must be at least 1")
    ranked = np.empty((len(histories), k), dtype=np.int64)
    width = n_items
    for start in range(0, len(histories), chunk_size):
        stop = min(start + chunk_size, len(histories))
        batch = histories.take(np.arange(start, stop))
        if isinstance(model, Ranking):
            ranked[start:stop] = model.top(batch, k, exclude_seen)
        else:
            scores = np.asarray(model.score(batch))
            width = scores.shape[-1] if width is None else width
            if scores.shape != (len(batch), width):
                raise ValueError(f"score returned shape {scores.shape} for {len(batch)} rows; expected (B, {width})")
            ranked[start:stop] = top_k(scores, k, batch if exclude_seen else None)
        if on_chunk is not None:
            on_chunk(stop)
    return ranked


class Audit(TypedDict):
    """What ``evaluate`` audits lists over beyond accuracy, by its argument names."""

    item_vectors: np.ndarray | None
    item_categories: np.ndarray | None
    item_providers: np.ndarray | None
    user_attributes: pd.DataFrame | None


def audit_of(dataset: Dataset) -> Audit:
    """A data set's audit, the same for every model: diversity and calibration over its categories, exposure across
    its providers, accuracy by its user attributes (each None where the data has none)."""
    categories = dataset.category_matrix()
    return Audit(
        item_vectors=categories,
        item_categories=categories,
        item_providers=dataset.provider_codes(),
        user_attributes=dataset.user_attributes,
    )


def evaluate(
    model: Scorer | Ranking,
    eval_set: EvalSet,
    item_popularity: np.ndarray,
    ks: tuple[int, ...] = (5, 10, 20),
    chunk_size: int = 1024,
    on_chunk: Callable[[int], None] | None = None,
    item_vectors: np.ndarray | None = None,
    item_categories: np.ndarray | None = None,
    item_providers: np.ndarray | None = None,
    group_gaps: bool = True,
    user_attributes: pd.DataFrame | None = None,
) -> EvalResult:
    """Full ranking over all items with each user's history excluded, then accuracy, beyond-accuracy, slices and
    the history-length group gaps.

    ``item_popularity`` is the (n_items,) training interaction count per item index (index 0 = padding = 0);
    its length must equal the score width. A target the user already has in their history is excluded like
    any seen item and so cannot be hit (repeat consumption is out of scope for this protocol); such targets are
    counted in ``n_repeat_targets`` so a report can say how many of the misses were certain.
    With ``item_vectors`` ((n_items, D), any model-independent item representation, e.g. text vectors) the lists'
    intra-list diversity is measured, with ``item_categories`` ((n_items, C) category distribution per item) their
    category calibration (see ``beyond``), with ``item_providers`` ((n_items,) a provider code per item, -1 for
    none: ``Dataset.provider_codes``) the Gini of exposure across providers and the share of slots that went to
    small providers (the bottom half by training interactions). ``group_gaps=False`` skips the bootstrap (about
    0.3 s on Beauty), for validation passes that read only the means. ``user_attributes`` (labels by user index,
    e.g. MovieLens-1M's gender, age and occupation) adds a slice per label and a gap per attribute.
    """
    popularity = np.asarray(item_popularity)
    if popularity.ndim != 1 or len(popularity) < 2:
        raise ValueError("item_popularity must be a (n_items,) vector with padding at index 0")
    if len(eval_set) == 0:
        raise ValueError("the evaluation set has no users")
    if np.any(eval_set.targets.lengths() == 0):
        raise ValueError("every evaluated user needs at least one target")
    ks = tuple(sorted(set(ks)))
    if not ks or ks[0] < 1:
        raise ValueError(f"cut-offs must be positive, got {ks}")
    ranked = rank(model, eval_set.histories, ks[-1], chunk_size, True, on_chunk, n_items=len(popularity))
    hits = hits_matrix(ranked, eval_set.targets)
    per_user = per_user_metrics(hits, n_relevant(eval_set.targets), ks)
    metrics = {name: float(values.mean()) for name, values in per_user.items()}
    metrics.update(_beyond_accuracy(ranked, popularity, ks))
    for k in ks:
        if item_vectors is not None:
            metrics[f"ILD@{k}"] = intra_list_diversity(ranked[:, :k], item_vectors)
        if item_categories is not None:
            metrics[f"CalibrationKL@{k}"] = calibration_kl(eval_set.histories, ranked[:, :k], item_categories)
    if item_providers is not None:
        metrics.update(_provider_exposure(ranked, item_providers, popularity, ks))
    groups = {"history_length": _length_groups(eval_set)}
    if user_attributes is not None:
        groups.update(_attribute_groups(eval_set, user_attributes))
    slices = _slices(eval_set, popularity, per_user, ks, groups)
    repeats = int(repeated_targets(eval_set.histories, eval_set.targets).sum())
    gaps = _gaps(groups, per_user, 10 if 10 in ks else ks[-1]) if group_gaps else []
    return EvalResult(metrics, len(eval_set), slices, per_user, n_repeat_targets=repeats, gaps=gaps)


def _beyond_accuracy(ranked: np.ndarray, popularity: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    n_items = len(popularity) - 1
    groups = popularity_groups(popularity, HEAD_SHARE, TAIL_SHARE)
    metrics: dict[str, float] = {}
    for k in ks:
        top = ranked[:, :k]
        metrics[f"Coverage@{k}"] = coverage(top, n_items)
        metrics[f"Gini@{k}"] = gini(top, n_items)
        metrics[f"MeanPop@{k}"] = mean_popularity(top, popularity)
        metrics[f"Novelty@{k}"] = novelty(top, popularity)
        for name, share in zip(_EXPOSURE_GROUPS, exposure_shares(top, groups, len(_EXPOSURE_GROUPS)), strict=True):
            metrics[f"Exposure{name}@{k}"] = float(share)
    return metrics


def _provider_exposure(
    ranked: np.ndarray, providers: np.ndarray, popularity: np.ndarray, ks: tuple[int, ...]
) -> dict[str, float]:
    small = small_providers(providers, popularity, TAIL_SHARE).astype(np.int8)
    metrics: dict[str, float] = {}
    for k in ks:
        metrics[f"ProviderGini@{k}"] = provider_gini(ranked[:, :k], providers)
        metrics[f"ExposureSmallProviders@{k}"] = float(exposure_shares(ranked[:, :k], small, 2)[1])
    return metrics


def _gaps(groups: dict[str, dict[str, np.ndarray]], per_user: dict[str, np.ndarray], k: int) -> list[GroupGap]:
    """HR and NDCG at ``k``: the best- against the worst-served group of each kind (none where all fall in one)."""
    return [
        group_gap(kind, f"{m}@{k}", per_user[f"{m}@{k}"], masks)
        for kind, masks in groups.items()
        if sum(mask.any() for mask in masks.values()) >= 2
        for m in _SLICE_METRICS
    ]


def _attribute_groups(eval_set: EvalSet, attributes: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """Per attribute column, label -> mask over the evaluated users (users without the label are in none)."""
    rows = attributes.reindex(eval_set.histories.users)
    return {
        column: {str(label): (rows[column] == label).to_numpy() for label in sorted(rows[column].dropna().unique())}
        for column in attributes.columns
    }


def _length_groups(eval_set: EvalSet) -> dict[str, np.ndarray]:
    bucket = np.searchsorted(_LENGTH_BOUNDS, eval_set.histories.lengths(), side="right")
    return {name: bucket == b for b, name in enumerate(_LENGTH_NAMES)}


def _slices(
    eval_set: EvalSet,
    popularity: np.ndarray,
    per_user: dict[str, np.ndarray],
    ks: tuple[int, ...],
    user_groups: dict[str, dict[str, np.ndarray]],
) -> list[SliceResult]:
    """Users grouped by ``user_groups`` (history length, attributes) and by the popularity of their (first)
    target; empty groups dropped."""
    names = [f"{metric}@{k}" for k in ks for metric in _SLICE_METRICS]
    groups = [(kind, name, mask) for kind, masks in user_groups.items() for name, mask in masks.items()]
    first_target = eval_set.targets.items[eval_set.targets.indptr[:-1]]
    in_head = popularity_head(popularity, HEAD_SHARE)[first_target]
    groups += [("target_popularity", "head", in_head), ("target_popularity", "tail", ~in_head)]
    return [
        SliceResult(kind, name, int(mask.sum()), {n: float(per_user[n][mask].mean()) for n in names})
        for kind, name, mask in groups
        if mask.any()
    ]
