"""The live catalog the rankings read: the model's vocabulary plus every stored item, kept in step with the store.

Items the model was not trained on get indices after its vocabulary and are placed by their text (when the model
has a text side). Every change builds a new immutable ``ItemIndex`` and swaps one reference, so a request reads one
consistent snapshot without locking. Several server processes on one store stay in step through the store's catalog
revision: ``snapshot`` first applies whatever another process wrote.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from shoprec.encoders.cache import CachedEncoder
from shoprec.encoders.item_text import item_text
from shoprec.encoders.text import EncoderConfig, Kind, OnBatch, TextEncoder, create_encoder
from shoprec.models.base import EmbeddingModel, Recommender
from shoprec.ranking.items import ItemIndex, index_items, model_items
from shoprec.storage.store import CatalogItem, Store
from shoprec.types import Vocabulary


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
def shared_encoder(config: EncoderConfig) -> TextEncoder:
    """One loaded model per encoder config and process, however many pipelines (or tests) use it."""
    return _Serialised(create_encoder(config))


def cached_encoder(config: EncoderConfig, cache_dir: Path) -> CachedEncoder:
    return CachedEncoder(shared_encoder(config), cache_dir / "encoders")


class Catalog:
    """Holds the current ``ItemIndex``; writes are serialised by a lock, readers take ``snapshot()``."""

    def __init__(
        self,
        model: Recommender,
        vocabulary: Vocabulary,
        store: Store,
        search: tuple[TextEncoder, EncoderConfig],
        model_text: tuple[TextEncoder, EncoderConfig] | None = None,
    ) -> None:
        """``search``: the search encoder and its config; ``model_text``: the encoder and config the model's item
        vectors were made with (``manifest.encoder``), so new items are placed from text cut exactly as in training;
        None when the model reads no text (new items then get no model vector)."""
        self.model = model
        self.store = store
        self.search = search
        self.model_text = model_text
        self._lock = threading.Lock()
        search_vectors = np.zeros((vocabulary.size, search[0].dim), dtype=np.float32)
        self._current = model_items(model, vocabulary.ids, search_vectors)
        if model_text is not None:  # new items' model-encoder vectors, one row per item added after training
            self._current = replace(self._current, new_text=np.zeros((0, model_text[0].dim), dtype=np.float32))
        self._revision = store.catalog_revision()  # read first: a write landing meanwhile is read again later
        self._apply(store.items())

    def snapshot(self) -> ItemIndex:
        """The index to serve from, first brought up to the store's catalog revision (one primary-key read; the
        items themselves are read only when another process changed them)."""
        revision = self.store.catalog_revision()
        if revision > self._revision:
            with self._lock:
                if revision > self._revision:
                    changed = self.store.items(since=self._revision)
                    if changed:
                        self._apply(changed)
                    self._revision = revision  # later writes read here too are simply read again next time
        return self._current

    def write(self, items: Sequence[CatalogItem]) -> int:
        """Durable in the store first, then into the index: a new item is servable as soon as this returns.
        Returns how many of the items the model was not trained on."""
        with self._lock:
            revision = self.store.upsert_items(items)
            new = self._apply(items)
            if revision == self._revision + 1:  # no other process wrote in between: the index is at this revision
                self._revision = revision
        return new

    def _apply(self, items: Sequence[CatalogItem]) -> int:
        """Add or update ``items`` (the last version of a repeated id wins) and swap in the new index. Known items
        keep their index and their trained vector; only their metadata and search vector change."""
        latest = list({item.item_id: item for item in items}.values())
        old = self._current
        ids = list(old.ids) + [item.item_id for item in latest if item.item_id not in old.positions]
        positions = {item_id: i for i, item_id in enumerate(ids)}
        rows = np.array([positions[item.item_id] for item in latest], dtype=np.int64)
        search_encoder, search_config = self.search
        records: list[CatalogItem | None] = [*old.items, *[None] * (len(ids) - len(old))]
        for row, item in zip(rows.tolist(), latest, strict=True):
            records[row] = item
        search = _grown(old.search, len(ids))
        if latest:
            texts = [item_text(item_fields(item), search_config.max_chars) for item in latest]
            search[rows] = search_encoder.encode(texts, "passage")
        new_rows = rows >= old.n_trained
        new_text = _grown(old.new_text, len(ids) - old.n_trained)
        if new_rows.any() and self.model_text is not None:
            model_encoder, model_config = self.model_text
            new = [
                item_text(item_fields(item), model_config.max_chars)
                for item, is_new in zip(latest, new_rows, strict=True)
                if is_new
            ]
            new_text[rows[new_rows] - old.n_trained] = model_encoder.encode(new, "passage")
        self._current = index_items(
            tuple(ids),
            records,
            table=self._table(new_text, len(ids)),
            popularity=old.popularity[: old.n_trained],
            search=search,
            new_text=new_text,
        )
        return int(new_rows.sum())

    def _table(self, new_text: np.ndarray, n: int) -> np.ndarray | None:
        """The model's item table with a row per new item: placed by text, or zero when the model has no text side;
        None for a model without item vectors."""
        if not isinstance(self.model, EmbeddingModel):
            return None
        if self.model_text is not None:
            return np.asarray(self.model.item_table(new_text), dtype=np.float32)
        return _grown(np.asarray(self.model.item_table(), dtype=np.float32), n)


def item_fields(item: CatalogItem) -> dict[str, object]:
    """The fields of ``item`` that make its encoder text (``item_text``)."""
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
