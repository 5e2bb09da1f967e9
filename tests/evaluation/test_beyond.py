"""Beyond-accuracy measures against hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.evaluation import beyond

# Four real items (indices 1..4); training counts 6, 3, 1, 0 -> total 10. Index 0 is padding.
POPULARITY = np.array([0, 6, 3, 1, 0])
# Two users' top-2 lists: items 1 and 2 are recommended, 1 twice; the 0 is an empty slot.
RANKED = np.array([[1, 2], [1, 0]])


def test_coverage() -> None:
    # Distinct recommended {1, 2} = 2 of 4 real items; padding is not an item.
    assert beyond.coverage(RANKED, 4) == pytest.approx(0.5)


def test_gini_even_exposure_is_zero() -> None:
    assert beyond.gini(np.array([[1, 2], [3, 4]]), 4) == pytest.approx(0.0)


def test_gini_hand_example() -> None:
    # Exposure over items 1..3 = [0, 1, 3] (item 1 never shown). Sorted x = [0, 1, 3], n = 3, sum = 4.
    # G = sum_i (2i - n - 1) x_i / (n * sum) = (-2*0 + 0*1 + 2*3) / (3 * 4) = 6 / 12 = 0.5
    ranked = np.array([[2, 3], [3, 0], [3, 0]])
    assert beyond.gini(ranked, 3) == pytest.approx(0.5)


def test_gini_one_item_takes_everything() -> None:
    # Exposure [0, 0, 0, 5]: G = (3 * 5) / (4 * 5) = 0.75 = (n - 1) / n.
    assert beyond.gini(np.full((5, 1), 4), 4) == pytest.approx(0.75)


def test_mean_popularity() -> None:
    # Recommended items 1, 2, 1 -> counts 6, 3, 6 -> mean 5. The empty slot is not counted.
    assert beyond.mean_popularity(RANKED, POPULARITY) == pytest.approx(5.0)


def test_novelty() -> None:
    # p(i) = (count + 1) / (10 + 4): p(1) = 7/14 = 1/2 -> 1 bit; p(2) = 4/14 -> log2(14/4) = 1.80735 bits.
    # Mean over 1, 2, 1 = (1 + 1.80735 + 1) / 3 = 1.26912
    assert beyond.novelty(RANKED, POPULARITY) == pytest.approx((2 + np.log2(3.5)) / 3)
    assert beyond.novelty(RANKED, POPULARITY) == pytest.approx(1.26912, abs=1e-5)


def test_novelty_of_an_unseen_item_is_finite() -> None:
    # Item 4 has count 0: p = 1/14 -> log2(14) = 3.80735 bits.
    assert beyond.novelty(np.array([[4]]), POPULARITY) == pytest.approx(np.log2(14))


def test_nothing_recommended() -> None:
    empty = np.zeros((2, 3), dtype=np.int64)
    assert beyond.coverage(empty, 4) == 0.0
    assert beyond.gini(empty, 4) == 0.0
    assert beyond.mean_popularity(empty, POPULARITY) == 0.0
    assert beyond.novelty(empty, POPULARITY) == 0.0


def test_ids_outside_the_catalog_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"1\.\.4"):
        beyond.coverage(np.array([[5]]), 4)


def test_popularity_head() -> None:
    # Ten items; ceil(0.2 * 10) = 2 head items. Counts tie at 5 for items 2, 3 and 7: lower index wins,
    # so head = {2, 3}. Padding is never head.
    popularity = np.array([0, 1, 5, 5, 0, 2, 0, 5, 1, 1, 0])
    head = beyond.popularity_head(popularity, 0.2)
    np.testing.assert_array_equal(np.flatnonzero(head), [2, 3])


def test_popularity_head_never_holds_unseen_items() -> None:
    # Five items, ceil(0.2 * 5) = 1, but no item was seen in training: no head at all.
    assert not beyond.popularity_head(np.zeros(6, dtype=np.int64)).any()
