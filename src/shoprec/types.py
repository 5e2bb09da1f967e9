"""Small value types shared by every layer: vocabularies and per-user sequences.

Raw ids live only at ingest and in responses; everything in between speaks dense indices, with index 0 reserved
for padding so that sequence models can pad with it and score matrices can be indexed by item index directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import scipy.sparse as sp

PADDING = 0


class EventType(StrEnum):
    """Behaviour event kinds accepted at ingest."""

    VIEW = "view"
    CLICK = "click"
    CART = "cart"
    PURCHASE = "purchase"
    RATING = "rating"


@dataclass(frozen=True)
class Vocabulary:
    """Raw id <-> dense index. Index 0 is padding; ``ids[i - 1]`` is the raw id of index ``i``."""

    ids: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = {raw: i + 1 for i, raw in enumerate(self.ids)}
        if len(index) != len(self.ids):
            raise ValueError("vocabulary ids must be unique")
        object.__setattr__(self, "_index", index)

    @classmethod
    def from_ids(cls, ids: Iterable[str]) -> Vocabulary:
        """Keep the first occurrence of each id, in order."""
        return cls(tuple(dict.fromkeys(str(raw) for raw in ids)))

    @property
    def size(self) -> int:
        """Number of indices including padding: the width of a score matrix."""
        return len(self.ids) + 1

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, raw: object) -> bool:
        return raw in self._index

    def index(self, raw: str) -> int:
        return self._index[raw]

    def lookup(self, raws: Iterable[str]) -> np.ndarray:
        """Indices of ``raws``; unknown ids map to PADDING so callers can drop or report them."""
        return np.fromiter((self._index.get(raw, PADDING) for raw in raws), dtype=np.int64)

    def id_of(self, index: int) -> str:
        if not 1 <= index <= len(self.ids):
            raise IndexError(f"item index {index} is outside 1..{len(self.ids)}")
        return self.ids[index - 1]

    def ids_of(self, indices: Iterable[int]) -> list[str]:
        return [self.id_of(int(i)) for i in indices]


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class Sequences:
    """Per-user chronological item indices in CSR form.

    Row ``r`` belongs to user index ``users[r]`` and holds ``items[indptr[r]:indptr[r + 1]]``, oldest first.
    ``timestamps`` (seconds) is aligned with ``items``, or None when only the order is known.
    """

    users: np.ndarray  # (R,) int64
    indptr: np.ndarray  # (R + 1,) int64
    items: np.ndarray  # (N,) int64, every value >= 1
    timestamps: np.ndarray | None = None  # (N,) float64

    def __post_init__(self) -> None:
        if len(self.indptr) != len(self.users) + 1 or self.indptr[-1] != len(self.items):
            raise ValueError("indptr does not match users/items")
        if self.timestamps is not None and len(self.timestamps) != len(self.items):
            raise ValueError("timestamps must align with items")
        for array in (self.users, self.indptr, self.items, self.timestamps):
            if array is not None:
                _readonly(array)

    @classmethod
    def from_lists(
        cls,
        users: Sequence[int] | np.ndarray,
        rows: Sequence[Sequence[int] | np.ndarray],
        timestamps: Sequence[Sequence[float] | np.ndarray] | None = None,
    ) -> Sequences:
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]) if rows else np.empty(0, np.int64)
        stamps = None
        if timestamps is not None:
            stamps = np.concatenate([np.asarray(t, dtype=np.float64) for t in timestamps]) if rows else None
        return cls(np.asarray(users, dtype=np.int64).copy(), indptr, items.astype(np.int64), stamps)

    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_interactions(self) -> int:
        return len(self.items)

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def row(self, r: int) -> np.ndarray:
        return self.items[self.indptr[r] : self.indptr[r + 1]]

    def rows(self) -> list[np.ndarray]:
        return [self.row(r) for r in range(len(self))]

    def take(self, rows: np.ndarray | Sequence[int]) -> Sequences:
        """A new Sequences holding only the given rows, in the given order."""
        rows = np.asarray(rows, dtype=np.int64)
        positions = [np.arange(self.indptr[r], self.indptr[r + 1]) for r in rows]
        flat = np.concatenate(positions) if positions else np.empty(0, np.int64)
        lengths = self.lengths()[rows]
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        stamps = None if self.timestamps is None else self.timestamps[flat].copy()
        return Sequences(self.users[rows].copy(), indptr, self.items[flat].copy(), stamps)

    def split_at(self, cut_points: np.ndarray) -> tuple[Sequences, Sequences]:
        """Split every row at position ``cut_points[r]``: (items before, items from there on)."""
        cuts = np.clip(np.asarray(cut_points, dtype=np.int64), 0, self.lengths())
        position = np.arange(len(self.items)) - np.repeat(self.indptr[:-1], self.lengths())
        head_mask = position < np.repeat(cuts, self.lengths())
        return self._masked(head_mask, cuts), self._masked(~head_mask, self.lengths() - cuts)

    def keep(self, mask: np.ndarray) -> Sequences:
        """The same rows holding only the events where ``mask`` (aligned with ``items``) is True, order kept."""
        return self._masked(mask, self.row_counts(mask))

    def row_counts(self, mask: np.ndarray) -> np.ndarray:
        """(R,) how many True values of ``mask`` (aligned with ``items``) fall in each row."""
        running = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        return running[self.indptr[1:]] - running[self.indptr[:-1]]

    def _masked(self, keep: np.ndarray, lengths: np.ndarray) -> Sequences:
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        stamps = None if self.timestamps is None else self.timestamps[keep].copy()
        return Sequences(self.users.copy(), indptr, self.items[keep].copy(), stamps)

    def to_csr(self, n_columns: int, binary: bool = True) -> sp.csr_matrix:
        """(rows x n_columns) user-item matrix; repeated items count once when ``binary``."""
        data = np.ones(len(self.items), dtype=np.float32)
        matrix = sp.csr_matrix((data, self.items, self.indptr), shape=(len(self), n_columns))
        matrix.sum_duplicates()
        if binary:
            matrix.data[:] = 1.0
        return matrix

    def fingerprint(self) -> str:
        """Content hash of users, order and items: identifies the exact data a model was fit on."""
        digest = hashlib.sha256()
        for array in (self.users, self.indptr, self.items):
            digest.update(np.ascontiguousarray(array, dtype=np.int64).tobytes())
        return digest.hexdigest()
