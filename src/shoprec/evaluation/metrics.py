"""Accuracy metrics as pure functions of (ranked ids, truth), one value per user.

Everything works from a boolean hits matrix so that each metric at each cut-off is a cheap vectorised reduction,
and nothing here knows about models. Ranks are 1-based; ``hits[:, 0]`` is rank 1.
"""

from __future__ import annotations

import numpy as np

from shoprec.types import Sequences


def hits_matrix(ranked: np.ndarray, targets: Sequences) -> np.ndarray:
    """(B, K) bool: ``ranked[b, k]`` is one of user ``b``'s targets (``targets`` row ``b``, any length).

    Rows of ``ranked`` are expected to hold distinct ids; ids <= 0 (padding fill) never count as hits.
    """
    ranked = np.asarray(ranked, dtype=np.int64)
    if ranked.ndim != 2 or len(ranked) != len(targets):
        raise ValueError(f"ranked must be (n_users={len(targets)}, K), got shape {ranked.shape}")
    width = _key_width(ranked, targets.items)
    # One int64 key per (row, item) pair turns the per-row set lookup into a single vectorised isin.
    keys = np.arange(len(ranked), dtype=np.int64)[:, None] * width + ranked
    return np.isin(keys, _truth_keys(targets, width)) & (ranked > 0)


def n_relevant(targets: Sequences) -> np.ndarray:
    """(B,) int64: distinct target items per row (a repeated target counts once)."""
    width = _key_width(targets.items)
    rows = np.unique(_truth_keys(targets, width)) // width
    return np.bincount(rows, minlength=len(targets)).astype(np.int64)


def repeated_targets(histories: Sequences, targets: Sequences) -> np.ndarray:
    """(B,) int64: distinct targets per row that are already in that row's history (a repeat purchase).

    The protocol excludes seen items from the ranking, so such a target can never be hit.
    """
    if len(histories) != len(targets):
        raise ValueError(f"{len(histories)} histories for {len(targets)} target rows")
    width = _key_width(histories.items, targets.items)
    truth = np.unique(_truth_keys(targets, width))
    repeated = np.isin(truth, _truth_keys(histories, width))
    return np.bincount(truth[repeated] // width, minlength=len(targets)).astype(np.int64)


def hit_rate(hits: np.ndarray, k: int) -> np.ndarray:
    """1 when any target is in the top ``k``."""
    return np.asarray(_top(hits, k).any(axis=1), dtype=np.float64)


def recall(hits: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Hits in the top ``k`` over distinct relevant items (0 for a row with none)."""
    return _safe_divide(_top(hits, k).sum(axis=1), relevant)


def precision(hits: np.ndarray, k: int) -> np.ndarray:
    """Hits in the top ``k`` over ``k``: the list length is fixed, so a short truth caps it below 1."""
    return _top(hits, k).sum(axis=1) / k


def f1(hits: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Harmonic mean of precision and recall at ``k``; 0 when both are 0."""
    p, r = precision(hits, k), recall(hits, relevant, k)
    return _safe_divide(2 * p * r, p + r)


def ndcg(hits: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Binary-gain NDCG: sum of 1/log2(rank + 1) over hits, over the ideal for min(n_relevant, k) hits."""
    top = _top(hits, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = top @ discounts
    ideal_counts = np.minimum(np.asarray(relevant, dtype=np.int64), k)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[ideal_counts]
    return _safe_divide(dcg, ideal)


def mrr(hits: np.ndarray, k: int) -> np.ndarray:
    """1 / rank of the first hit within the top ``k``, else 0."""
    top = _top(hits, k)
    first = top.argmax(axis=1)
    return np.where(top.any(axis=1), 1.0 / (first + 1), 0.0)


def per_user_metrics(hits: np.ndarray, relevant: np.ndarray, ks: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Every accuracy metric at every cut-off, keyed like "NDCG@10", one float64 per user."""
    metrics: dict[str, np.ndarray] = {}
    for k in ks:
        metrics[f"HR@{k}"] = hit_rate(hits, k)
        metrics[f"NDCG@{k}"] = ndcg(hits, relevant, k)
        metrics[f"MRR@{k}"] = mrr(hits, k)
        metrics[f"Recall@{k}"] = recall(hits, relevant, k)
        metrics[f"Precision@{k}"] = precision(hits, k)
        metrics[f"F1@{k}"] = f1(hits, relevant, k)
    return metrics


def _top(hits: np.ndarray, k: int) -> np.ndarray:
    if hits.ndim != 2 or not 1 <= k <= hits.shape[1]:
        raise ValueError(f"cut-off k={k} must be in 1..{hits.shape[-1]} (the ranked list length)")
    return hits[:, :k]


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape, dtype=np.float64)
    return np.divide(numerator, denominator, out=out, where=np.asarray(denominator) > 0)


def _key_width(*ids: np.ndarray) -> int:
    return int(max(array.max(initial=0) for array in ids)) + 1


def _truth_keys(targets: Sequences, width: int) -> np.ndarray:
    rows = np.repeat(np.arange(len(targets), dtype=np.int64), targets.lengths())
    return rows * width + targets.items
