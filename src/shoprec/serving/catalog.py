"""The in-memory item index the pipeline serves from: ids, display fields and two vector tables, by dense index.

The model's vocabulary keeps its indices 1..n (0 is padding), so the model's own item table lines up with it;
items the model was not trained on get the indices after it and are placed by their text. Every change builds a
new immutable ``ItemIndex`` and swaps one reference, so a request reads one consistent snapshot without locking.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from shoprec.encoders.cache import CachedEncoder
from shoprec.encoders.item_text import item_text
from shoprec.encoders.text import EncoderConfig, Kind, OnBatch, TextEncoder, create_encoder, normalise
from shoprec.models.base import EmbeddingModel
from shoprec.storage.store import CatalogItem
from shoprec.types import PADDING, Vocabulary

LEVEL_SEPARATOR = ">"


class _Serialised(TextEncoder):
    """One encoder used by one thread at a time, since neither model is documented as safe to call from several
    threads at once. MiniLM's loader raises torch's thread count to every core, which would slow the serving path
    (see ``serve_single_threaded``), so the count is put back after each call.
    """

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self.name = encoder.name
        self.dim = encoder.dim
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str], kind: Kind = "passage", on_batch: OnBatch | None = None) -> np.ndarray:
        with self._lock:
            threads = torch.get_num_threads()
            try:
                return self.encoder.encode(texts, kind, on_batch)
            finally:
                torch.set_num_threads(threads)


@functools.cache
def shared_encoder(name: str) -> TextEncoder:
    """One loaded model per encoder and process, however many pipelines (or tests) use it."""
    return _Serialised(create_encoder(EncoderConfig(name=name)))


def cached_encoder(name: str, cache_dir: Path) -> CachedEncoder:
    return CachedEncoder(shared_encoder(name), cache_dir / "encoders")


def levels(category: str | None) -> tuple[str, ...]:
    """The levels of a category path, stripped: "Beauty > Makeup > Nails" -> ("Beauty", "Makeup", "Nails")."""
    if not category:
        return ()
    return tuple(level.strip() for level in category.split(LEVEL_SEPARATOR) if level.strip())


@dataclass(frozen=True)
class ItemIndex:
    """One consistent view of the catalog; row ``i`` of every array is item index ``i`` (row 0 is padding)."""

    ids: tuple[str, ...]  # ids[0] is "" (padding)
    positions: dict[str, int]
    items: tuple[CatalogItem | None, ...]  # None: known to the model only, no metadata in the store
    prices: np.ndarray  # (N,) float64, NaN when unknown
    category_codes: np.ndarray  # (N,) int64 into ``paths``; -1 without a category
    paths: tuple[frozenset[str], ...]  # each distinct category path as its lower-cased levels
    query_categories: tuple[str, ...]  # level names a query may name as a filter (see ``Catalog._index``)
    table: np.ndarray  # (N, D) float32 the model's item table: user vector · row = score
    unit_table: np.ndarray  # (N, D) rows of ``table`` at unit length, for item-item cosine
    search: np.ndarray  # (N, T) float32 unit search-encoder vectors; zero rows for items without text
    popularity: np.ndarray  # (N,) float32 training interaction counts; new items 0
    n_trained: int  # vocabulary size with padding: indices from here on are new items
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

    def title(self, index: int) -> str | None:
        item = self.items[index]
        return None if item is None else item.title

    def category(self, index: int) -> str | None:
        item = self.items[index]
        return None if item is None else item.category

    def price(self, index: int) -> float | None:
        return None if np.isnan(self.prices[index]) else float(self.prices[index])


class Catalog:
    """Holds the current ``ItemIndex``; ``upsert`` is serialised by a lock, readers just take ``current``."""

    def __init__(
        self,
        model: EmbeddingModel,
        vocabulary: Vocabulary,
        model_encoder: TextEncoder | None,
        search_encoder: TextEncoder,
        model_encoder_config: EncoderConfig | None,
        max_chars: int = 512,
    ) -> None:
        if (model_encoder is None) != (model_encoder_config is None):
            raise ValueError(
                "the model encoder comes with the config its item vectors were made with (manifest.encoder)"
            )
        self.model = model
        self.vocabulary = vocabulary
        self.model_encoder = model_encoder  # None: the model has no text side, so new items get zero rows
        self.search_encoder = search_encoder
        # New items' text is capped as training capped it (manifest.encoder.max_chars): no train/serve skew.
        self.model_encoder_config = model_encoder_config
        self.max_chars = max_chars  # search text cap
        self._lock = threading.Lock()
        table = np.asarray(model.item_table(), dtype=np.float32)
        n = vocabulary.size
        self._current = self._index(
            ids=("", *vocabulary.ids),
            items=[None] * n,
            search=np.zeros((n, search_encoder.dim), dtype=np.float32),
            new_text=np.zeros((0, model_encoder.dim if model_encoder else 0), dtype=np.float32),
            n_trained=n,
            table=table,
        )

    @property
    def current(self) -> ItemIndex:
        return self._current

    def upsert(self, items: Sequence[CatalogItem]) -> int:
        """Add or update ``items`` (the last version of a repeated id wins) and swap in the new index.

        Known items keep their index and, when the model was trained on them, their trained vector; only their
        metadata and search vector change. Returns how many of the items the model was not trained on.
        """
        latest = list({item.item_id: item for item in items}.values())
        with self._lock:
            old = self._current
            ids = list(old.ids)
            for item in latest:
                if item.item_id not in old.positions:
                    ids.append(item.item_id)
            positions = {item_id: i for i, item_id in enumerate(ids)}
            rows = np.array([positions[item.item_id] for item in latest], dtype=np.int64)
            texts = [item_text(_fields(item), self.max_chars) for item in latest]

            records: list[CatalogItem | None] = [*old.items, *[None] * (len(ids) - len(old))]
            for row, item in zip(rows, latest, strict=True):
                records[row] = item
            search = _grown(old.search, len(ids))
            search[rows] = self.search_encoder.encode(texts, "passage")

            new_rows = rows >= old.n_trained
            new_text = _grown(old.new_text, len(ids) - old.n_trained)
            if new_rows.any() and self.model_encoder is not None and self.model_encoder_config is not None:
                cap = self.model_encoder_config.max_chars
                new_texts = [
                    item_text(_fields(item), cap) for item, is_new in zip(latest, new_rows, strict=True) if is_new
                ]
                new_text[rows[new_rows] - old.n_trained] = self.model_encoder.encode(new_texts, "passage")
            self._current = self._index(
                ids=tuple(ids),
                items=records,
                search=search,
                new_text=new_text,
                n_trained=old.n_trained,
                table=self._table(new_text, len(ids)),
            )
            return int(new_rows.sum())

    def _table(self, new_text: np.ndarray, n: int) -> np.ndarray:
        """The model's item table with a row per new item: placed by text, or zero when the model has no text side."""
        if self.model_encoder is not None:
            return np.asarray(self.model.item_table(new_text), dtype=np.float32)
        return _grown(np.asarray(self.model.item_table(), dtype=np.float32), n)

    def _index(
        self,
        ids: tuple[str, ...],
        items: list[CatalogItem | None],
        search: np.ndarray,
        new_text: np.ndarray,
        n_trained: int,
        table: np.ndarray,
    ) -> ItemIndex:
        """Derive the per-index arrays. A level name that covers more than half the catalog (the root, such as
        "Beauty" in a beauty shop) is no use as a query filter, so it is left out of ``query_categories``.
        """
        categories = [levels(item.category) if item is not None else () for item in items]
        paths = list(dict.fromkeys(frozenset(level.lower() for level in path) for path in categories if path))
        code_of = {path: code for code, path in enumerate(paths)}
        codes = [code_of[frozenset(level.lower() for level in path)] if path else -1 for path in categories]
        counts = Counter(level for path in categories for level in set(path))
        popularity = np.zeros(len(ids), dtype=np.float32)
        popularity[:n_trained] = self.model.popularity[:n_trained]
        prices = [np.nan if item is None or item.price is None else item.price for item in items]
        return ItemIndex(
            ids=ids,
            positions={item_id: i for i, item_id in enumerate(ids) if i != PADDING},
            items=tuple(items),
            prices=np.asarray(prices, dtype=np.float64),
            category_codes=np.asarray(codes, dtype=np.int64),
            paths=tuple(paths),
            query_categories=tuple(name for name, count in counts.items() if count <= (len(ids) - 1) / 2),
            table=table,
            unit_table=normalise(table),
            search=search,
            popularity=popularity,
            n_trained=n_trained,
            new_text=new_text,
        )


def _fields(item: CatalogItem) -> dict[str, object]:
    return {
        "title": item.title,
        "category": item.category,
        "brand": item.brand,
        "description": item.description,
        "tags": item.tags,
    }


def _grown(array: np.ndarray, rows: int) -> np.ndarray:
    """A copy of ``array`` with zero rows appended up to ``rows``: the old snapshot is never written to."""
    grown = np.zeros((rows, array.shape[1]), dtype=array.dtype)
    grown[: len(array)] = array
    return grown
