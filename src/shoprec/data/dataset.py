"""The immutable Dataset every stage above the readers works on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shoprec.types import Sequences, Vocabulary

CATALOG_COLUMNS = ("title", "description", "category", "brand", "price", "tags", "reviews")


@dataclass(frozen=True)
class Dataset:
    """Vocabularies, per-user chronological sequences and item text, all keyed by dense index.

    ``users`` holds pseudonyms only: raw user ids never get this far. ``catalog`` is indexed by item index
    (1..n) with the columns of CATALOG_COLUMNS (missing values are None/NaN); text fields are HTML-unescaped.
    ``event_types`` is aligned with ``sequences.items`` when the source had event types.
    """

    name: str
    items: Vocabulary
    users: Vocabulary
    sequences: Sequences
    catalog: pd.DataFrame
    event_types: np.ndarray | None = None

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

    def fingerprint(self) -> str:
        """Hash of item vocabulary and interactions: what a model artifact records as its training data."""
        digest = hashlib.sha256(self.sequences.fingerprint().encode())
        digest.update("\n".join(self.items.ids).encode())
        return digest.hexdigest()


def empty_catalog(n_items: int) -> pd.DataFrame:
    """A catalog with no attributes for items 1..n_items."""
    return pd.DataFrame(
        {column: pd.Series([None] * n_items, dtype=object) for column in CATALOG_COLUMNS},
        index=pd.RangeIndex(1, n_items + 1, name="item_index"),
    )
