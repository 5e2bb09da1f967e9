"""Beyond-accuracy measures against hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.evaluation import beyond
from shoprec.types import Sequences

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


def test_popularity_groups() -> None:
    # Ten items by count: 1 (9), 2 (8), 3..6 (5 each), 7 and 8 (1 each), 9 and 10 never seen.
    popularity = np.array([0, 9, 8, 5, 5, 5, 5, 1, 1, 0, 0])
    groups = beyond.popularity_groups(popularity, head=0.2, tail=0.5)
    assert groups.tolist() == [-1, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2]  # 6 ties 3..5 and falls into the bottom half


def test_exposure_shares() -> None:
    groups = np.array([-1, 0, 1, 2, 2])
    shares = beyond.exposure_shares(np.array([[1, 3], [4, 0], [1, 2]]), groups, 3)
    np.testing.assert_allclose(shares, [2 / 5, 1 / 5, 2 / 5])
    np.testing.assert_array_equal(beyond.exposure_shares(np.zeros((2, 2), dtype=int), groups, 3), [0, 0, 0])


def test_intra_list_diversity_by_hand() -> None:
    vectors = np.array([[0, 0], [1, 0], [0, 2], [1, 1], [3, 0]], dtype=float)  # row 0 padding
    # List 1: items 1, 2, 3 -> cos(1,2) = 0, cos(1,3) = cos(2,3) = 1/sqrt(2): distances 1, 1 - .7071, 1 - .7071.
    # List 2: items 1 and 4 point the same way -> distance 0. List 3 has one item: no pair, left out.
    ranked = np.array([[1, 2, 3], [1, 4, 0], [2, 0, 0]])
    first = (1 + 2 * (1 - 1 / np.sqrt(2))) / 3
    assert beyond.intra_list_diversity(ranked, vectors) == pytest.approx((first + 0) / 2)
    assert beyond.intra_list_diversity(np.array([[2, 0]]), vectors) == 0.0


def test_calibration_kl_by_hand() -> None:
    # Categories A, B: items 1 and 2 are A, item 3 is B, item 4 is half A half B; row 0 padding.
    categories = np.array([[0, 0], [1, 0], [1, 0], [0, 1], [0.5, 0.5]])
    histories = Sequences.from_lists([0, 1], [[1, 2, 3], [4, 3]])
    ranked = np.array([[1, 2], [4, 3]])
    alpha = 0.01
    # User 1: p = (2/3, 1/3), list all A: q = (1, 0), q~ = (1 - a) q + a p.
    p = np.array([2 / 3, 1 / 3])
    q = (1 - alpha) * np.array([1.0, 0.0]) + alpha * p
    first = float(np.sum(p * np.log(p / q)))
    # User 2: p = (.25, .75) and the list has the same mix: KL 0.
    assert beyond.calibration_kl(histories, ranked, categories, alpha) == pytest.approx(first / 2)
    assert first > 1.0  # a one-category list for a mixed history is far from calibrated


def test_calibration_kl_leaves_out_users_without_categorised_items() -> None:
    categories = np.array([[0, 0], [1, 0], [0, 0]])  # item 2 has no category
    histories = Sequences.from_lists([0, 1], [[2], [1]])
    assert beyond.calibration_kl(histories, np.array([[1], [1]]), categories) == pytest.approx(0.0)
    # An uncategorised item in a list still fills a slot: history all A, list (A, none) -> q = (.5, 0), q~_A = .505.
    diluted = beyond.calibration_kl(histories, np.array([[1, 2], [1, 2]]), categories)
    assert diluted == pytest.approx(np.log(1 / (0.99 * 0.5 + 0.01)))
    with pytest.raises(ValueError, match="2 histories for 1 lists"):
        beyond.calibration_kl(histories, np.array([[1]]), categories)


def test_intra_list_diversity_over_many_lists_equals_the_mean_of_each_list() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, 5))
    ranked = rng.integers(0, 30, size=(2_500, 6))  # zeros are empty slots; more lists than one batch holds
    means = []
    for row in ranked:
        items = row[row != 0]
        if len(items) > 1:
            unit = vectors[items] / np.linalg.norm(vectors[items], axis=1, keepdims=True)
            means.append(np.mean([1 - unit[a] @ unit[b] for a in range(len(items)) for b in range(a + 1, len(items))]))
    assert beyond.intra_list_diversity(ranked, vectors) == pytest.approx(np.mean(means))


def test_provider_gini_by_hand() -> None:
    # Items 1 and 2 are provider 0's, item 3 provider 1's, item 5 provider 2's (never listed); item 4 has none.
    providers = np.array([-1, 0, 0, 1, -1, 2])
    # Lists: [1, 2], [3, 4], [1, 0]: provider 0 shown 3 times, provider 1 once, provider 2 never; item 4 has none.
    # Sorted exposure [0, 1, 3], n = 3, sum 4: G = (-2*0 + 0*1 + 2*3) / (3 * 4) = 0.5
    ranked = np.array([[1, 2], [3, 4], [1, 0]])
    assert beyond.provider_gini(ranked, providers) == pytest.approx(0.5)


def test_small_providers_are_the_bottom_half_by_interactions() -> None:
    # Provider volumes: 0 -> 6 + 3 = 9, 1 -> 1, 2 -> 0 (never interacted), 3 -> 4; item 6 has none.
    providers = np.array([-1, 0, 0, 1, 2, 3, -1])
    popularity = np.array([0, 6, 3, 1, 0, 4, 7])
    # ceil(0.5 x 4) = 2 smallest: provider 2 (0) and 1 (1), so items 3 and 4; item 6 has no provider.
    small = beyond.small_providers(providers, popularity, share=0.5)
    assert np.flatnonzero(small).tolist() == [3, 4]
    # With a quarter: the single smallest (provider 2), and a provider never interacted with is always small.
    assert np.flatnonzero(beyond.small_providers(providers, popularity, share=0.25)).tolist() == [4]
    with pytest.raises(ValueError, match="provider codes"):
        beyond.small_providers(providers[:-1], popularity)
