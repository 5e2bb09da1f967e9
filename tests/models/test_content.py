from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from contracts import TINY, TINY_ITEMS, RecommenderContract, histories
from shoprec.data.dataset import Dataset
from shoprec.encoders.cache import encode_catalog
from shoprec.encoders.text import MiniLMEncoder, normalise
from shoprec.evaluation.protocol import top_k
from shoprec.models.base import TrainData
from shoprec.models.content import Content, ContentConfig
from shoprec.types import Sequences

# Items 1..5 of TINY as hand-made 3-d text vectors; item 5 has no text (zero vector).
VECTORS = np.array(
    [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [np.sqrt(0.5), np.sqrt(0.5), 0], [0, 0, 0]], dtype=np.float32
)


def fitted_on_tiny(**options: float) -> Content:
    model = Content(ContentConfig.model_validate(options))
    model.fit(TrainData(n_items=TINY_ITEMS, sequences=TINY, item_vectors=VECTORS))
    return model


class TestContent(RecommenderContract):
    model_class = Content
    knows_untrained_items = True
    needs_item_vectors = True

    def test_known_answer(self) -> None:
        model = fitted_on_tiny(recency_decay=0.5)
        # History 1 2 3 (newest last): weights 0.25, 0.5, 1 -> profile = (0.25, 0.5, 1) / 1.75.
        profile = np.array([0.25, 0.5, 1.0]) / 1.75
        expected = [-np.inf, *(VECTORS[1:] @ profile)]
        np.testing.assert_allclose(model.score(histories([1, 2, 3]))[0], expected, rtol=1e-6)

    def test_repeats_add_up_and_items_without_text_carry_no_weight(self) -> None:
        model = fitted_on_tiny(recency_decay=0.5)
        # History 1 2 1 5: item 5 (newest, weight 1) has no text; item 1 gets 0.5 + 0.125, item 2 gets 0.25.
        profile = np.array([0.625, 0.25, 0.0]) / 0.875
        expected = [-np.inf, *(VECTORS[1:] @ profile)]
        np.testing.assert_allclose(model.score(histories([1, 2, 1, 5]))[0], expected, rtol=1e-6)

    def test_only_the_most_recent_max_history_items_count(self) -> None:
        model = fitted_on_tiny(recency_decay=0.9, max_history=1)
        np.testing.assert_allclose(model.score(histories([1, 2, 3]))[0, 1:], VECTORS[1:, 2], rtol=1e-6)

    def test_history_without_text_falls_back_to_popularity(self) -> None:
        scores = fitted_on_tiny().score(histories([5], []))
        popularity = np.bincount(TINY.items, minlength=TINY_ITEMS).astype(np.float32)
        np.testing.assert_array_equal(scores[:, 1:], np.vstack([popularity[1:], popularity[1:]]))

    def test_fit_needs_item_vectors_of_the_right_shape(self) -> None:
        with pytest.raises(ValueError, match="item_vectors"):
            Content().fit(TrainData(n_items=TINY_ITEMS, sequences=TINY))
        with pytest.raises(ValueError, match=r"\(6, D\)"):
            Content().fit(TrainData(n_items=TINY_ITEMS, sequences=TINY, item_vectors=VECTORS[:4]))

    def test_decay_must_be_in_zero_one(self) -> None:
        with pytest.raises(ValueError, match="recency_decay"):
            ContentConfig(recency_decay=1.5)


def test_cold_item_close_to_the_history_ranks_in_the_top_3(beauty: Dataset, minilm: MiniLMEncoder) -> None:
    """Real titles, real MiniLM vectors: a nail polish nobody bought, against 40 popular non-nail products."""
    category = beauty.catalog["category"].fillna("")
    polish = beauty.catalog[category.str.endswith("Nail Polish")].head(4)
    others = beauty.catalog[~category.str.contains("Nail")].head(40)
    catalog = _renumbered(polish, others)  # items 1..3: history, 4: cold, 5..44: others
    vectors = encode_catalog(catalog, minilm)
    popular_others = np.repeat(np.arange(5, 45), 5)  # every other item bought 5 times; item 4 never
    train = Sequences.from_lists([0, 1], [[1, 2, 3], popular_others])
    model = Content()
    model.fit(TrainData(n_items=45, sequences=train, item_vectors=vectors))
    ranked = top_k(model.score(histories([1, 2, 3])), 3, exclude=histories([1, 2, 3]))[0]
    assert 4 in ranked


def _renumbered(*parts: pd.DataFrame) -> pd.DataFrame:
    """Rows of the slice's catalog as a catalog of their own, indexed 1..n."""
    frame = pd.concat(parts)
    return frame.set_axis(pd.RangeIndex(1, len(frame) + 1))


def test_profile_is_the_weighted_mean_of_unit_vectors() -> None:
    rng = np.random.default_rng(0)
    vectors = np.vstack([np.zeros((1, 8)), normalise(rng.normal(size=(30, 8)))]).astype(np.float32)
    sequences = Sequences.from_lists([0], [np.arange(1, 31)])
    model = Content(ContentConfig(recency_decay=0.8, max_history=5))
    model.fit(TrainData(n_items=31, sequences=sequences, item_vectors=vectors))
    history = [3, 9, 4, 17, 22, 8]
    weights = 0.8 ** np.arange(5)[::-1]  # the last 5 items, newest weighted 1
    profile = weights @ vectors[history[-5:]] / weights.sum()
    np.testing.assert_allclose(model.score(histories(history))[0, 1:], vectors[1:] @ profile, rtol=1e-5, atol=1e-6)
