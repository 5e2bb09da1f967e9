from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from shoprec.data.dataset import Dataset
from shoprec.encoders.text import (
    ENCODERS,
    BatchedEncoder,
    E5Encoder,
    EncoderConfig,
    Kind,
    MiniLMEncoder,
    TextEncoder,
    create_encoder,
)


@pytest.fixture(scope="module")
def e5() -> E5Encoder:
    return E5Encoder()


@pytest.fixture(scope="module")
def titles(beauty: Dataset) -> tuple[list[str], list[str]]:
    """Three real nail polish titles and three real shampoo titles from the Beauty slice."""
    catalog = beauty.catalog
    polish = catalog[catalog["category"].str.endswith("Nail Polish", na=False)]["title"].head(3).tolist()
    shampoo = catalog[catalog["category"].str.endswith("Shampoos", na=False)]["title"].head(3).tolist()
    return polish, shampoo


def check_unit_rows(encoder: TextEncoder) -> None:
    vectors = encoder.encode(["Red nail polish", "", "Argan oil shampoo for dry hair", "   "])
    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[[0, 2]], axis=1), 1.0, rtol=1e-5)
    assert not vectors[[1, 3]].any()  # empty and blank texts give zero vectors


def test_minilm_gives_unit_vectors_and_zeros_for_empty_text(minilm: MiniLMEncoder) -> None:
    check_unit_rows(minilm)


def test_e5_gives_unit_vectors_and_zeros_for_empty_text(e5: E5Encoder) -> None:
    check_unit_rows(e5)


def query_finds(encoder: TextEncoder, titles: tuple[list[str], list[str]], queries: dict[str, str]) -> list[str]:
    """The queries whose group of titles ("polish" or "shampoo") is closer to them than every other title."""
    groups = dict(zip(("polish", "shampoo"), (encoder.encode(group) for group in titles), strict=True))
    found = []
    for query, target in queries.items():
        q = encoder.encode([query], "query")[0]
        others = np.vstack([vectors for name, vectors in groups.items() if name != target])
        if (groups[target] @ q).min() > (others @ q).max():
            found.append(query)
    return found


def test_minilm_finds_nail_polish_for_an_english_query(
    minilm: MiniLMEncoder, titles: tuple[list[str], list[str]]
) -> None:
    queries = {"red nail polish": "polish", "shampoo for dry hair": "shampoo"}
    assert query_finds(minilm, titles, queries) == list(queries)


def test_e5_finds_english_titles_for_english_and_chinese_queries(
    e5: E5Encoder, titles: tuple[list[str], list[str]]
) -> None:
    queries = {"red nail polish": "polish", "红色指甲油": "polish", "洗发水": "shampoo"}  # zh: red nail polish, shampoo
    assert query_finds(e5, titles, queries) == list(queries)


def test_e5_is_asymmetric_and_minilm_is_not(minilm: MiniLMEncoder, e5: E5Encoder) -> None:
    text = ["glossy red nail polish"]
    np.testing.assert_allclose(minilm.encode(text, "query"), minilm.encode(text, "passage"), rtol=1e-6)
    assert not np.allclose(e5.encode(text, "query"), e5.encode(text, "passage"), atol=1e-3)
    with pytest.raises(ValueError, match="kind"):
        e5.encode(text, "document")  # type: ignore[arg-type]


def test_batched_rows_match_texts_encoded_alone(minilm: MiniLMEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches are formed by text length, so this checks each row lands back in its own place."""
    texts = ["a much longer text about a moisturising face cream with SPF 30", "", "lipstick", "hair dryer"]
    alone = np.vstack([minilm.encode([text]) for text in texts])
    monkeypatch.setattr(minilm, "batch_size", 2)
    together = minilm.encode(texts)
    np.testing.assert_allclose(together, alone, atol=1e-5)


class FakeEncoder(BatchedEncoder):
    """Records the batches it is given; vector = (length, 1, 0, ...) so rows can be traced back to texts."""

    name = "fake"
    dim = 4

    def __init__(self, batch_size: int) -> None:
        super().__init__(batch_size)
        self.batches: list[list[str]] = []

    def _encode_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        self.batches.append(texts)
        return np.array([[len(text), 1.0, 0.0, 0.0] for text in texts])


def test_batches_respect_batch_size_keep_row_order_and_report_progress() -> None:
    encoder = FakeEncoder(batch_size=2)
    texts = ["ccc", "", "a", "bbbb", "dd"]
    done: list[int] = []
    vectors = encoder.encode(texts, on_batch=done.append)
    assert encoder.batches == [["a", "dd"], ["ccc", "bbbb"]]  # by length, blank text never sent
    lengths = np.array([len(text) for text in texts], dtype=np.float32)
    expected = np.stack([lengths, np.sign(lengths)], axis=1) / np.hypot(lengths, 1.0)[:, None]
    np.testing.assert_allclose(vectors[:, :2], np.nan_to_num(expected), rtol=1e-6)
    assert done == [3, 5]  # the blank text counts as done at once


def test_create_encoder_is_lazy_and_follows_the_config() -> None:
    encoder = create_encoder(EncoderConfig(name="e5", batch_size=8))
    assert isinstance(encoder, E5Encoder)
    assert encoder.batch_size == 8
    assert encoder._model is None  # nothing loaded until the first encode
    assert isinstance(create_encoder(EncoderConfig()), MiniLMEncoder)
    assert set(ENCODERS) == {"minilm", "e5", "hashing"}


def test_the_hashing_encoder_matches_shared_words_and_chinese_bigrams() -> None:
    """No weights: a query finds the titles that share its words, in English or (by character bigrams) Chinese."""
    encoder = create_encoder(EncoderConfig(name="hashing"))
    titles = encoder.encode(["Red nail polish", "Moisturising face cream", "指甲油 红色", "保湿面霜", ""])
    assert np.allclose(np.linalg.norm(titles[:4], axis=1), 1.0) and not titles[4].any()
    for query, best in (("nail polish", 0), ("face cream", 1), ("红色指甲油", 2), ("面霜", 3)):
        assert int(np.argmax(titles @ encoder.encode([query], "query")[0])) == best
    np.testing.assert_array_equal(encoder.encode(["Red nail polish"]), titles[:1])  # deterministic


def test_encoder_names_record_model_and_package_version() -> None:
    assert MiniLMEncoder().name.startswith("all-minilm-l6-v2@")
    assert E5Encoder().name.startswith("multilingual-e5-small-q4@")


def test_config_rejects_unknown_names_and_keys() -> None:
    with pytest.raises(ValidationError, match="name"):
        EncoderConfig(name="bert")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="batchsize"):
        EncoderConfig.model_validate({"batchsize": 3})
    with pytest.raises(ValidationError, match="batch_size"):
        EncoderConfig(batch_size=0)
