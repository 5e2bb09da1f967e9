"""The item view every stage ranks over: ids, display fields and vector tables by dense item index.

Indices 1..n are the model's vocabulary (0 is padding), so the model's own item table lines up with it; items the
model was not trained on (added to a live catalog) take the indices after it. An ``ItemIndex`` is immutable: a live
catalog swaps in a new one, so a ranking reads one consistent snapshot without locking.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shoprec.data.dataset import Dataset, label_codes, level_at, levels, provider_labels
from shoprec.encoders.text import normalise
from shoprec.evaluation.beyond import popularity_groups, small_providers
from shoprec.evaluation.protocol import HEAD_SHARE, TAIL_SHARE
from shoprec.models.base import EmbeddingModel, Recommender
from shoprec.storage.store import CatalogItem
from shoprec.types import PADDING, Sequences


@dataclass(frozen=True)
class ItemIndex:
    """One consistent view of the catalog; row ``i`` of every array is item index ``i`` (row 0 is padding)."""

    ids: tuple[str, ...]  # ids[0] is "" (padding)
    positions: dict[str, int]
    items: tuple[CatalogItem | None, ...]  # None: known to the model only, no catalog record
    prices: np.ndarray  # (N,) float64, NaN when unknown
    available: np.ndarray  # (N,) bool: False for items the catalog marks unavailable (padding too)
    category_codes: np.ndarray  # (N,) int64 into ``paths``; -1 without a category
    paths: tuple[frozenset[str], ...]  # each distinct category path as its lower-cased levels
    category_groups: np.ndarray  # (N,) int64: the item's category at the audit's level (``category_at``), -1 none
    query_categories: tuple[str, ...]  # level names a query may name as a filter (see ``index_items``)
    brands: np.ndarray  # (N,) object: each item's brand lower-cased and stripped, "" without one
    table: np.ndarray | None  # (N, D) float32 the model's item table (user vector · row = score); None: no vectors
    unit_table: np.ndarray | None  # (N, D) rows of ``table`` at unit length, for item-item cosine
    search: np.ndarray  # (N, T) float32 unit text vectors; zero rows for items without text, T = 0 without encoder
    popularity: np.ndarray  # (N,) float32 training interaction counts; new items 0
    tail: np.ndarray  # (N,) bool: the audit's long tail (bottom half by training count; new items always)
    small_provider: np.ndarray  # (N,) bool: items of the audit's small providers (``beyond.small_providers``)
    n_trained: int  # vocabulary size with padding: indices from here on are items the model never saw
    new_text: np.ndarray  # (N - n_trained, T') model-encoder vectors of the new items

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, item_id: str) -> int:
        """The dense index of ``item_id``; KeyError when the catalog does not hold it."""
        return self.positions[item_id]

    def real(self) -> np.ndarray:
        """(N,) bool: every item but padding, a fresh array callers may narrow in place."""
        mask = np.ones(len(self), dtype=bool)
        mask[PADDING] = False
        return mask

    def in_categories(self, names: Sequence[str]) -> np.ndarray:
        """(N,) bool: items whose category path has a level equal to any of ``names`` (case-insensitive)."""
        wanted = {name.strip().lower() for name in names}
        codes = [code for code, path in enumerate(self.paths) if path & wanted]
        return np.isin(self.category_codes, codes)

    def with_brands(self, names: Sequence[str]) -> np.ndarray:
        """(N,) bool: items whose brand is any of ``names`` (case-insensitive)."""
        wanted = {name.strip().lower() for name in names} - {""}
        return np.isin(self.brands, list(wanted))

    def title(self, index: int) -> str | None:
        item = self.items[index]
        return None if item is None else item.title

    def category(self, index: int) -> str | None:
        item = self.items[index]
        return None if item is None else item.category

    def price(self, index: int) -> float | None:
        return None if np.isnan(self.prices[index]) else float(self.prices[index])


def catalog_record(item_id: str, row: dict[object, object]) -> CatalogItem:
    """A dataset catalog row as a catalog record; missing values (None or NaN) become None, a list of tags a
    tuple."""
    text = {name: value if isinstance(value, str) and value else None for name, value in row.items()}
    price = row.get("price")
    tags = row.get("tags")
    return CatalogItem(
        item_id=item_id,
        title=text.get("title"),
        description=text.get("description"),
        category=text.get("category"),
        brand=text.get("brand"),
        price=float(price) if isinstance(price, (int, float)) and not math.isnan(price) else None,
        tags=tuple(str(tag) for tag in tags) if isinstance(tags, (list, tuple, np.ndarray)) else (),
    )


def catalog_records(dataset: Dataset, item_ids: Sequence[str]) -> list[CatalogItem | None]:
    """One record per item index for a vocabulary of ``item_ids`` (padding first, as None): each id's row of the
    dataset's catalog, None for an id the dataset does not hold."""
    rows = dataset.catalog.to_dict("records")  # row i is item index i + 1
    return [
        None,
        *(catalog_record(i, rows[dataset.items.index(i) - 1]) if i in dataset.items else None for i in item_ids),
    ]


def index_items(
    ids: Sequence[str],
    items: Sequence[CatalogItem | None],
    *,
    table: np.ndarray | None,
    popularity: np.ndarray,
    search: np.ndarray | None = None,
    new_text: np.ndarray | None = None,
    n_trained: int | None = None,
) -> ItemIndex:
    """Derive the per-index arrays. ``ids[0]`` is padding; ``popularity`` covers the trained items (shorter is
    padded with zeros for new ones). A level name that covers more than half the catalog (the root, such as
    "Beauty" in a beauty shop) is no use as a query filter, so it is left out of ``query_categories``.
    """
    n = len(ids)
    n_trained = len(popularity) if n_trained is None else n_trained
    categories = [levels(item.category) if item is not None else () for item in items]
    paths = list(dict.fromkeys(frozenset(level.lower() for level in path) for path in categories if path))
    code_of = {path: code for code, path in enumerate(paths)}
    codes = [code_of[frozenset(level.lower() for level in path)] if path else -1 for path in categories]
    counts = Counter(level for path in categories for level in set(path))
    grouped = [(level_at(path) or "").lower() for path in categories]
    group_of = {name: code for code, name in enumerate(dict.fromkeys(name for name in grouped if name))}
    counted = np.zeros(n, dtype=np.float32)
    counted[:n_trained] = popularity[:n_trained]
    prices = [np.nan if item is None or item.price is None else item.price for item in items]
    available = np.array([item is None or item.available for item in items], dtype=bool)
    brands = np.array([(item.brand or "").strip().lower() if item is not None else "" for item in items], dtype=object)
    available[PADDING] = False
    return ItemIndex(
        ids=tuple(ids),
        positions={item_id: i for i, item_id in enumerate(ids) if i != PADDING},
        items=tuple(items),
        prices=np.asarray(prices, dtype=np.float64),
        available=available,
        category_codes=np.asarray(codes, dtype=np.int64),
        paths=tuple(paths),
        category_groups=np.array([group_of.get(name, -1) for name in grouped], dtype=np.int64),
        query_categories=tuple(name for name, count in counts.items() if count <= (n - 1) / 2),
        brands=brands,
        table=table,
        unit_table=None if table is None else normalise(table),
        search=np.zeros((n, 0), dtype=np.float32) if search is None else search,
        popularity=counted,
        tail=popularity_groups(counted, HEAD_SHARE, TAIL_SHARE) == 2,
        small_provider=_small_providers(items, counted),
        n_trained=n_trained,
        new_text=np.zeros((n - n_trained, 0), dtype=np.float32) if new_text is None else new_text,
    )


def _small_providers(items: Sequence[CatalogItem | None], popularity: np.ndarray) -> np.ndarray:
    """The audit's small-provider items, by the provider rule it uses (brand, else category as a stand-in)."""
    brands = [item.brand if item is not None else None for item in items]
    providers = label_codes(provider_labels(brands, [item.category if item is not None else None for item in items]))
    if not (providers[1:] >= 0).any():
        return np.zeros(len(items), dtype=bool)
    return small_providers(providers, popularity, TAIL_SHARE)


def non_personal_ranking(model: Recommender) -> np.ndarray:
    """(n_items,) the model's own ranking for an empty history (its training popularity): the cold-start list."""
    if isinstance(model, EmbeddingModel):
        return np.asarray(model.popularity, dtype=np.float32)
    scores = np.asarray(model.score(Sequences.from_lists(np.zeros(1), [[]]))[0], dtype=np.float32)
    scores[PADDING] = 0.0
    return scores


def model_items(
    model: Recommender,
    item_ids: Sequence[str],
    search: np.ndarray | None = None,
    records: Sequence[CatalogItem | None] | None = None,
) -> ItemIndex:
    """The view of a trained model's own vocabulary (``item_ids`` without padding): with no catalog records, what
    offline evaluation ranks over and what a live catalog starts from; with ``records`` (one per item index, row 0
    padding), a fixed catalog as the command line and offline assistant scripts rank over."""
    n = len(item_ids) + 1
    if records is not None and len(records) != n:
        raise ValueError(f"{len(records)} catalog records for {n} item indices (padding included)")
    table = np.asarray(model.item_table(), dtype=np.float32) if isinstance(model, EmbeddingModel) else None
    return index_items(
        ("", *item_ids),
        [None] * n if records is None else records,
        table=table,
        popularity=non_personal_ranking(model),
        search=search,
    )
