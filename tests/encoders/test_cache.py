from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprec.data.dataset import empty_catalog
from shoprec.encoders import cache
from shoprec.encoders.cache import DATABASE, CachedEncoder, encode_catalog
from shoprec.encoders.item_text import item_text
from shoprec.encoders.text import BatchedEncoder, Kind, MiniLMEncoder


class SpyEncoder(BatchedEncoder):
    """Deterministic vectors from a hash of (kind, text); counts every text it encodes."""

    dim = 8

    def __init__(self, name: str = "spy", fail_after: int | None = None) -> None:
        super().__init__(batch_size=4)
        self.name = name
        self.encoded: list[str] = []
        self.fail_after = fail_after  # raise once this many texts were encoded: a crash mid-run

    def _encode_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        if self.fail_after is not None and len(self.encoded) >= self.fail_after:
            raise RuntimeError("crash")
        self.encoded += texts
        seeds = [int.from_bytes(hashlib.sha256(f"{kind}|{t}".encode()).digest()[:8]) for t in texts]
        return np.stack([np.random.default_rng(seed).normal(size=self.dim) for seed in seeds])


TEXTS = ["red nail polish", "argan shampoo", "", "rose perfume", "red nail polish"]


def test_second_encode_is_served_from_disk(tmp_path: Path) -> None:
    spy = SpyEncoder()
    first = CachedEncoder(spy, tmp_path).encode(TEXTS)
    assert sorted(spy.encoded) == ["argan shampoo", "red nail polish", "rose perfume"]  # distinct and non-empty
    np.testing.assert_array_equal(first, spy.encode(TEXTS))
    spy.encoded.clear()
    again = CachedEncoder(spy, tmp_path).encode(TEXTS)  # a new process would open it the same way
    assert spy.encoded == []
    np.testing.assert_array_equal(again, first)
    assert not first[2].any()


def test_only_new_texts_are_encoded(tmp_path: Path) -> None:
    spy = SpyEncoder()
    cached = CachedEncoder(spy, tmp_path)
    cached.encode(TEXTS)
    spy.encoded.clear()
    vectors = cached.encode(["rose perfume", "matte lipstick", "argan shampoo"])
    assert spy.encoded == ["matte lipstick"]
    np.testing.assert_array_equal(vectors, spy.encode(["rose perfume", "matte lipstick", "argan shampoo"]))


def test_kinds_and_encoders_are_kept_apart(tmp_path: Path) -> None:
    spy, other = SpyEncoder(), SpyEncoder(name="other")
    CachedEncoder(spy, tmp_path).encode(["lipstick"], "passage")
    query = CachedEncoder(spy, tmp_path).encode(["lipstick"], "query")
    CachedEncoder(other, tmp_path).encode(["lipstick"])
    assert spy.encoded == ["lipstick", "lipstick"]
    assert other.encoded == ["lipstick"]
    np.testing.assert_array_equal(query, spy.encode(["lipstick"], "query"))
    with pytest.raises(ValueError, match="kind"):
        CachedEncoder(spy, tmp_path).encode(["lipstick"], "document")  # type: ignore[arg-type]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_file_is_rebuilt_not_trusted(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    spy = SpyEncoder()
    texts = [f"product {i}" for i in range(300)]  # a few pages, so truncation cuts the b-tree
    expected = CachedEncoder(spy, tmp_path).encode(texts)
    path = tmp_path / DATABASE
    if damage == "garbage":
        path.write_bytes(b"not a database" * 100)
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    spy.encoded.clear()
    with caplog.at_level(logging.WARNING):
        rebuilt = CachedEncoder(spy, tmp_path)
    assert "damaged" in caplog.text
    assert (tmp_path / f"{DATABASE}.corrupt").exists()
    np.testing.assert_array_equal(rebuilt.encode(texts), expected)
    assert len(spy.encoded) == len(texts)
    spy.encoded.clear()
    rebuilt.encode(texts)
    assert spy.encoded == []


def test_a_crash_mid_run_keeps_the_chunks_already_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "COMMIT_EVERY", 8)
    texts = [f"item {i:02d}" for i in range(20)]
    with pytest.raises(RuntimeError, match="crash"):
        CachedEncoder(SpyEncoder(fail_after=12), tmp_path).encode(texts)
    spy = SpyEncoder()
    vectors = CachedEncoder(spy, tmp_path).encode(texts)
    assert len(spy.encoded) == 12  # the first chunk of 8 survived; the chunk in flight did not
    np.testing.assert_array_equal(vectors, SpyEncoder().encode(texts))


def test_progress_counts_cached_texts_as_done(tmp_path: Path) -> None:
    cached = CachedEncoder(SpyEncoder(), tmp_path)
    cached.encode(TEXTS[:2])
    done: list[int] = []
    cached.encode(TEXTS, on_batch=done.append)
    assert done[-1] == len(TEXTS)
    assert done == sorted(done)


def test_encode_catalog_puts_item_i_in_row_i_and_padding_in_row_0() -> None:
    catalog = empty_catalog(3)
    catalog["title"] = pd.Series(["Red polish", None, "Argan shampoo"], index=catalog.index, dtype=object)
    catalog["tags"] = pd.Series([["gloss"], None, None], index=catalog.index, dtype=object)
    spy = SpyEncoder()
    vectors = encode_catalog(catalog, spy, max_chars=64)
    assert vectors.shape == (4, spy.dim)
    assert not vectors[0].any() and not vectors[2].any()  # padding, and an item without text
    np.testing.assert_array_equal(vectors[1], spy.encode([item_text({"title": "Red polish", "tags": ["gloss"]})])[0])
    with pytest.raises(ValueError, match="item index"):
        encode_catalog(catalog.set_axis(pd.RangeIndex(0, 3)), spy)


def test_real_encoder_through_the_cache_gives_its_own_vectors(minilm: MiniLMEncoder, tmp_path: Path) -> None:
    texts = ["glossy red nail polish", "", "argan oil shampoo"]
    cached = CachedEncoder(minilm, tmp_path)
    np.testing.assert_allclose(cached.encode(texts), minilm.encode(texts), atol=1e-6)
    np.testing.assert_array_equal(CachedEncoder(minilm, tmp_path).encode(texts), cached.encode(texts))
    assert cached.name == minilm.name and cached.dim == 384
