"""The catalog encodes new items exactly as training encoded the model's items: same encoder, same text cap."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from shoprec.data.dataset import Dataset
from shoprec.encoders.item_text import catalog_texts
from shoprec.encoders.text import EncoderConfig, Kind, OnBatch, TextEncoder
from shoprec.models.artifact import load_artifact, save_artifact
from shoprec.models.base import EmbeddingModel
from shoprec.serving.catalog import Catalog, shared_encoder
from shoprec.storage.store import CatalogItem, Store
from shoprec.training.config import RunConfig
from shoprec.training.experiment import train_model


class Recording(TextEncoder):
    """A real encoder that also keeps every text it was given: what reached the model's side."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder, self.name, self.dim = encoder, encoder.name, encoder.dim
        self.texts: list[str] = []

    def encode(self, texts: Sequence[str], kind: Kind = "passage", on_batch: OnBatch | None = None) -> np.ndarray:
        self.texts.extend(texts)
        return self.encoder.encode(texts, kind, on_batch)


def test_a_model_trained_on_64_character_item_text_is_served_with_64(
    serving_data: Dataset, cache_dir: Path, tmp_path: Path
) -> None:
    encoder = EncoderConfig(name="minilm", max_chars=64)
    selection, manifest = train_model(serving_data, RunConfig(model="content", encoder=encoder, cache_dir=cache_dir))
    save_artifact(tmp_path, selection.model, serving_data.items, manifest)
    model, vocabulary, loaded = load_artifact(tmp_path)
    assert isinstance(model, EmbeddingModel)
    assert loaded.encoder == encoder
    recording = Recording(shared_encoder(loaded.encoder))
    search = EncoderConfig(name="hashing")
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    catalog = Catalog(model, vocabulary, store, (shared_encoder(search), search), (recording, loaded.encoder))

    # A new id with the catalog fields of a trained item whose text runs past 64 characters: its twin.
    long_texts = [index for index, text in enumerate(catalog_texts(serving_data.catalog), start=1) if len(text) > 100]
    twin = long_texts[0]
    row = serving_data.catalog.loc[twin]
    catalog.write([CatalogItem(item_id="NEW", title=row["title"], category=row["category"])])

    assert recording.texts == [catalog_texts(serving_data.catalog, 64)[twin - 1]]  # the text training encoded
    index = catalog.snapshot()
    assert index.table is not None
    np.testing.assert_allclose(index.table[index.index("NEW")], index.table[twin], atol=1e-5)
    store.close()
