"""The immutable Dataset every stage above the readers works on."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shoprec.types import Sequences, Vocabulary

CATALOG_COLUMNS = ("title", "description", "category", "brand", "price", "tags", "reviews")
USER_ATTRIBUTES = ("gender", "age", "occupation")  # what a data set may say of its users, for the group audit
LEVEL_SEPARATOR = ">"
CATEGORY_DEPTH = 2  # the level of "Beauty > Makeup > Nails > Nail Polish" the audit groups items by: "Nails"


@dataclass(frozen=True)
class Dataset:
    """Vocabularies, per-user chronological sequences and item text, all keyed by dense index.

    ``users`` holds pseudonyms only: raw user ids never get this far. ``catalog`` is indexed by item index
    (1..n) with the columns of CATALOG_COLUMNS (missing values are None/NaN); text fields are HTML-unescaped.
    ``event_types`` is aligned with ``sequences.items`` when the source had event types. ``user_attributes``,
    when the source has them (MovieLens-1M), holds USER_ATTRIBUTES labels by user index (None where unknown).
    """

    name: str
    items: Vocabulary
    users: Vocabulary
    sequences: Sequences
    catalog: pd.DataFrame
    event_types: np.ndarray | None = None
    user_attributes: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if len(self.sequences) and int(self.sequences.items.max(initial=0)) >= self.items.size:
            raise ValueError("sequences reference an item index outside the vocabulary")
        if list(self.catalog.columns) != list(CATALOG_COLUMNS):
            raise ValueError(f"catalog columns must be {CATALOG_COLUMNS}")

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def title(self, item_index: int) -> str:
        """A display title: the catalog title, else the raw item id."""
        title = self.catalog.at[item_index, "title"] if item_index in self.catalog.index else None
        return str(title) if isinstance(title, str) and title else self.items.id_of(item_index)

    def category_matrix(self, depth: int = CATEGORY_DEPTH) -> np.ndarray | None:
        """(item vocabulary size, C) float64 one-hot of each item's category at ``depth`` of its "A > B > C" path
        (a shorter path: its last level; row 0 and uncategorised items all zero), what the audit measures
        diversity and calibration over; None when no item has a category. Amazon Beauty at depth 2: "Nails",
        "Skin Care", ...; MovieLens holds one category per movie, its first genre."""
        labels = [category_at(path, depth) for path in self.catalog["category"]]
        names = sorted({label for label in labels if label})
        if not names:
            return None
        column = {name: c for c, name in enumerate(names)}
        matrix = np.zeros((self.items.size, len(names)))
        for index, label in zip(self.catalog.index, labels, strict=True):
            if label:
                matrix[index, column[label]] = 1.0
        return matrix

    def provider_codes(self) -> np.ndarray | None:
        """(item vocabulary size,) int64: each item's provider for the exposure audit (see ``provider_labels``) as a
        code, -1 for none and for padding; None when no item has one."""
        labels = provider_labels(self.catalog["brand"].tolist(), self.catalog["category"].tolist())
        if not any(labels):
            return None
        codes = np.full(self.items.size, -1, dtype=np.int64)
        codes[self.catalog.index.to_numpy()] = label_codes(labels)
        return codes

    def fingerprint(self) -> str:
        """Hash of item vocabulary and interactions: what a model artifact records as its training data."""
        digest = hashlib.sha256(self.sequences.fingerprint().encode())
        digest.update("\n".join(self.items.ids).encode())
        return digest.hexdigest()


def levels(category: str | None) -> tuple[str, ...]:
    """The levels of a category path, stripped: "Beauty > Makeup > Nails" -> ("Beauty", "Makeup", "Nails")."""
    if not category:
        return ()
    return tuple(level.strip() for level in category.split(LEVEL_SEPARATOR) if level.strip())


def level_at(path: Sequence[str], depth: int = CATEGORY_DEPTH) -> str | None:
    """The level at ``depth`` (0 = the root) of a path's ``levels``, a shorter path's last level; None for no
    levels. The one grouping of items by category that the audit and calibration share."""
    return path[min(depth, len(path) - 1)] if path else None


def category_at(path: object, depth: int = CATEGORY_DEPTH) -> str | None:
    """``level_at`` of a catalog's category value (None, NaN or a path string)."""
    return level_at(levels(path) if isinstance(path, str) else (), depth)


def provider_labels(brands: Sequence[object], categories: Sequence[object]) -> list[str | None]:
    """Who supplies each item, for provider exposure: its brand (case and spaces folded) where any item has one,
    else its category at CATEGORY_DEPTH as a stand-in (a beauty catalogue without brands); None for an item
    without. The one rule the audit (``Dataset.provider_codes``) and the ranking's provider floor share."""
    folded = [brand.strip().lower() if isinstance(brand, str) else "" for brand in brands]
    if any(folded):
        return [brand or None for brand in folded]
    return [category_at(category) for category in categories]


def label_codes(labels: Sequence[str | None]) -> np.ndarray:
    """(n,) int64 codes of labels in sorted order of the distinct ones, -1 for None."""
    code = {label: c for c, label in enumerate(sorted({label for label in labels if label}))}
    return np.array([code[label] if label else -1 for label in labels], dtype=np.int64)


def empty_catalog(n_items: int) -> pd.DataFrame:
    """A catalog with no attributes for items 1..n_items."""
    return pd.DataFrame(
        {column: pd.Series([None] * n_items, dtype=object) for column in CATALOG_COLUMNS},
        index=pd.RangeIndex(1, n_items + 1, name="item_index"),
    )
