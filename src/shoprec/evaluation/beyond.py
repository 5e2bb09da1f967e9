"""Beyond-accuracy measures of the recommended lists: how much of the catalog they use and how popular it is.

Pure functions of a (B, K) ranked-id matrix. Slots holding 0 (padding: "no item", see ``protocol.top_k``) are
left out, so a short list never counts as exposure of the padding index.
``item_popularity`` is always the (n_items + 1,) training interaction count per item index, index 0 = padding.
"""

from __future__ import annotations

import math

import numpy as np


def coverage(ranked: np.ndarray, n_items: int) -> float:
    """Distinct recommended items over the number of real items (``n_items`` excludes padding)."""
    recommended = _recommended(ranked, n_items)
    return len(np.unique(recommended)) / n_items


def gini(ranked: np.ndarray, n_items: int) -> float:
    """Gini coefficient of exposure over all ``n_items`` real items, never-recommended ones counting 0.

    0 means every item is recommended equally often; (n - 1) / n, the maximum, means one item takes it all.
    An empty recommendation set has no concentration and gives 0.
    """
    exposure = np.bincount(_recommended(ranked, n_items), minlength=n_items + 1)[1:]
    total = exposure.sum()
    if total == 0:
        return 0.0
    ascending = np.sort(exposure).astype(np.float64)
    weights = 2 * np.arange(1, n_items + 1) - n_items - 1
    return float(weights @ ascending / (n_items * total))


def mean_popularity(ranked: np.ndarray, item_popularity: np.ndarray) -> float:
    """Mean training interaction count of the recommended items (0 when nothing was recommended)."""
    popularity = np.asarray(item_popularity)
    recommended = _recommended(ranked, len(popularity) - 1)
    return float(popularity[recommended].mean()) if len(recommended) else 0.0


def novelty(ranked: np.ndarray, item_popularity: np.ndarray) -> float:
    """Mean self-information -log2 p(i) of the recommended items, p(i) = (count(i) + 1) / (total + n_items).

    Add-one smoothing keeps items never seen in training finite (and the most novel).
    """
    popularity = np.asarray(item_popularity, dtype=np.float64)
    n_items = len(popularity) - 1
    recommended = _recommended(ranked, n_items)
    if not len(recommended):
        return 0.0
    counts = popularity[recommended]
    total = popularity[1:].sum()
    return float(np.mean(np.log2(total + n_items) - np.log2(counts + 1)))


def popularity_head(item_popularity: np.ndarray, share: float = 0.2) -> np.ndarray:
    """(n_items + 1,) bool: the top ``share`` of real items by training popularity.

    The head size is ceil(share * n_items); ties are broken by lower item index so the split is reproducible,
    and items never seen in training are never head. Padding is never head.
    """
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    popularity = np.asarray(item_popularity)
    n_items = len(popularity) - 1
    by_popularity = np.argsort(-popularity[1:], kind="stable") + 1
    head = np.zeros(n_items + 1, dtype=bool)
    head[by_popularity[: math.ceil(share * n_items)]] = True
    return head & (popularity > 0)


def _recommended(ranked: np.ndarray, n_items: int) -> np.ndarray:
    """Flat real item ids in ``ranked`` (padding fill dropped), checked to lie inside the catalog."""
    ids = np.asarray(ranked, dtype=np.int64).ravel()
    ids = ids[ids != 0]
    if n_items < 1:
        raise ValueError("there must be at least one real item")
    if len(ids) and (ids.min() < 1 or ids.max() > n_items):
        raise ValueError(f"ranked ids must lie in 1..{n_items} (0 marks an empty slot)")
    return ids
