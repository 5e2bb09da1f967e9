"""Beyond-accuracy measures of the recommended lists: how much of the catalog they use, how popular it is, how
varied each list is and how well its category mix follows the user's history.

Pure functions of a (B, K) ranked-id matrix. Slots holding 0 (padding: "no item", see ``protocol.top_k``) are
left out, so a short list never counts as exposure of the padding index.
``item_popularity`` is always the (n_items + 1,) training interaction count per item index, index 0 = padding.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from shoprec.types import Sequences


def coverage(ranked: np.ndarray, n_items: int) -> float:
    """Distinct recommended items over the number of real items (``n_items`` excludes padding)."""
    recommended = _recommended(ranked, n_items)
    return len(np.unique(recommended)) / n_items


def gini(ranked: np.ndarray, n_items: int) -> float:
    """Gini coefficient of exposure over all ``n_items`` real items, never-recommended ones counting 0.

    0 means every item is recommended equally often; (n - 1) / n, the maximum, means one item takes it all.
    An empty recommendation set has no concentration and gives 0.
    """
    return _gini(np.bincount(_recommended(ranked, n_items), minlength=n_items + 1)[1:])


def provider_gini(ranked: np.ndarray, item_providers: np.ndarray) -> float:
    """Gini coefficient of exposure over all providers (``item_providers``: a provider code per item index, -1 for
    none, e.g. ``Dataset.provider_codes``), never-recommended providers counting 0; items without one are left
    out."""
    providers = np.asarray(item_providers)
    codes = providers[_recommended(ranked, len(providers) - 1)]
    n_providers = int(providers.max()) + 1
    if n_providers < 1:
        raise ValueError("no item has a provider")
    return _gini(np.bincount(codes[codes >= 0], minlength=n_providers))


def small_providers(item_providers: np.ndarray, item_popularity: np.ndarray, share: float = 0.5) -> np.ndarray:
    """(n_items + 1,) bool: items of the bottom ``share`` of providers by training interactions (ceil(share x
    providers) of them, ties by lower code; providers never interacted with always among them), the provider
    counterpart of the item tail. Items without a provider and padding are never small-provider items."""
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    providers = np.asarray(item_providers)
    popularity = np.asarray(item_popularity, dtype=np.float64)
    if providers.shape != popularity.shape:
        raise ValueError(f"{providers.shape} provider codes for {popularity.shape} popularity counts")
    has = providers >= 0
    has[0] = False
    n_providers = int(providers.max()) + 1
    volume = np.bincount(providers[has], weights=popularity[has], minlength=n_providers)
    ascending = np.argsort(volume, kind="stable")
    small = np.zeros(n_providers, dtype=bool)
    small[ascending[: math.ceil(share * n_providers)]] = True
    small[volume == 0] = True
    return has & small[np.where(has, providers, 0)]


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


def popularity_groups(item_popularity: np.ndarray, head: float = 0.2, tail: float = 0.5) -> np.ndarray:
    """(n_items + 1,) int8: 0 head (the top ``head`` share of real items by training popularity), 1 mid, 2 tail (the
    bottom ``tail`` share, items never seen in training always among them); padding is -1. Ties as in
    ``popularity_head``."""
    if not (0 < head < 1 and 0 < tail < 1 and head + tail <= 1):
        raise ValueError(f"head ({head}) and tail ({tail}) must be shares in (0, 1) that sum to at most 1")
    popularity = np.asarray(item_popularity)
    n_items = len(popularity) - 1
    groups = np.full(n_items + 1, 1, dtype=np.int8)
    groups[0] = -1
    by_popularity = np.argsort(-popularity[1:], kind="stable") + 1
    groups[by_popularity[n_items - math.ceil(tail * n_items) :]] = 2
    groups[popularity_head(popularity, head)] = 0
    groups[1:][popularity[1:] == 0] = 2
    return groups


def exposure_shares(ranked: np.ndarray, item_groups: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups,) share of all recommendation slots that went to each group of items (``item_groups``: a group
    number per item index, e.g. ``popularity_groups``); zeros when nothing was recommended."""
    groups = np.asarray(item_groups)
    recommended = _recommended(ranked, len(groups) - 1)
    counts = np.bincount(groups[recommended], minlength=n_groups).astype(np.float64)
    return counts / counts.sum() if len(recommended) else counts


_ROWS_AT_ONCE = 1024  # lists per batched similarity: (1024, k, k) floats, not (users, k, k)


def intra_list_diversity(ranked: np.ndarray, item_vectors: np.ndarray) -> float:
    """Mean over lists of the mean cosine distance (1 - cos) between every two items in the list.

    ``item_vectors`` ((n_items + 1, D), row 0 = padding) need not be normalised; a zero row counts as distance 1 to
    everything. Lists with fewer than two real items have no pairs and are left out (0 when none has two).
    """
    vectors = np.asarray(item_vectors, dtype=np.float64)
    ranked = np.asarray(ranked, dtype=np.int64)
    _recommended(ranked, len(vectors) - 1)  # range check
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    upper = np.triu(np.ones((ranked.shape[1], ranked.shape[1]), dtype=bool), k=1)
    total, lists = 0.0, 0
    for start in range(0, len(ranked), _ROWS_AT_ONCE):
        rows = ranked[start : start + _ROWS_AT_ONCE]
        real = rows != 0  # (b, k)
        listed = unit[rows] * real[..., None]  # (b, k, D)
        pairs = real[:, :, None] & real[:, None, :] & upper  # (b, k, k): each pair of real items once
        n_pairs = pairs.sum(axis=(1, 2))
        distance = ((1.0 - listed @ listed.transpose(0, 2, 1)) * pairs).sum(axis=(1, 2))
        scored = n_pairs > 0
        total += float((distance[scored] / n_pairs[scored]).sum())
        lists += int(scored.sum())
    return total / lists if lists else 0.0


def calibration_kl(histories: Sequences, ranked: np.ndarray, item_categories: np.ndarray, alpha: float = 0.01) -> float:
    """Mean over users of KL(p || q~) (Steck, RecSys 2018): p = the category mix of the user's history, q = the mix
    of their list, q~ = (1 - alpha) q + alpha p so the KL stays finite when the list misses a category.

    ``item_categories`` ((n_items + 1, C), row 0 = padding) gives each item a distribution over categories (an
    item with two categories: 0.5 each). An uncategorised item adds nothing to p, which is normalised over the
    history's categorised items; in a list it still fills a slot, so q (over all listed items) sums to less than
    1, as in Steck's q(g|u). Users without a categorised history item or with an empty list are left out (0 when
    none is left).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    categories = np.asarray(item_categories, dtype=np.float64)
    ranked = np.asarray(ranked, dtype=np.int64)
    if len(histories) != len(ranked):
        raise ValueError(f"{len(histories)} histories for {len(ranked)} lists")
    _recommended(ranked, len(categories) - 1)
    history_mix = _counts(histories.items, histories.indptr, len(categories)) @ categories  # (B, C)
    kept = ranked != 0
    list_mix = _counts(ranked[kept], np.concatenate([[0], np.cumsum(kept.sum(axis=1))]), len(categories)) @ categories
    p_total, q_total = history_mix.sum(axis=1), kept.sum(axis=1)  # q over every listed item, categorised or not
    users = (p_total > 0) & (q_total > 0)
    if not users.any():
        return 0.0
    p = history_mix[users] / p_total[users, None]
    q = (1 - alpha) * list_mix[users] / q_total[users, None] + alpha * p
    terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / np.where(q > 0, q, 1.0)), 0.0)
    return float(terms.sum(axis=1).mean())


def _gini(exposure: np.ndarray) -> float:
    """Gini coefficient of non-negative counts: 0 all equal, (n - 1) / n one takes all, 0 for all zeros."""
    total = exposure.sum()
    if total == 0:
        return 0.0
    n = len(exposure)
    ascending = np.sort(exposure).astype(np.float64)
    weights = 2 * np.arange(1, n + 1) - n - 1
    return float(weights @ ascending / (n * total))


def _counts(items: np.ndarray, indptr: np.ndarray, width: int) -> sp.csr_matrix:
    """(rows, width) sparse counts of each row's items: category mixes without a dense (rows, items, C) array."""
    return sp.csr_matrix((np.ones(len(items)), items, indptr), shape=(len(indptr) - 1, width))


def _recommended(ranked: np.ndarray, n_items: int) -> np.ndarray:
    """Flat real item ids in ``ranked`` (padding fill dropped), checked to lie inside the catalog."""
    ids = np.asarray(ranked, dtype=np.int64).ravel()
    ids = ids[ids != 0]
    if n_items < 1:
        raise ValueError("there must be at least one real item")
    if len(ids) and (ids.min() < 1 or ids.max() > n_items):
        raise ValueError(f"ranked ids must lie in 1..{n_items} (0 marks an empty slot)")
    return ids
