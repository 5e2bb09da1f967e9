"""Every metric against a hand-computed example; the arithmetic is in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.evaluation import metrics as m
from shoprec.types import Sequences

# Three users, top-4 lists. User 0's target is at rank 1, user 1's at rank 3, user 2's is absent.
RANKED = np.array([[7, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4]])
ONE_TARGET = Sequences.from_lists([0, 1, 2], [[7], [7], [9]])


@pytest.fixture
def hits() -> np.ndarray:
    return m.hits_matrix(RANKED, ONE_TARGET)


def test_hits_matrix_marks_target_positions(hits: np.ndarray) -> None:
    expected = np.zeros((3, 4), dtype=bool)
    expected[0, 0] = expected[1, 2] = True
    np.testing.assert_array_equal(hits, expected)


def test_hits_matrix_with_several_and_repeated_targets() -> None:
    # Row 0 targets {3, 8} (8 repeated, counted once): only 3 is listed, at rank 3.
    # Row 1 targets {5, 8}: hits at ranks 1 and 4. Padding (0) in a list is never a hit.
    targets = Sequences.from_lists([0, 1], [[8, 3, 8], [8, 5]])
    hits = m.hits_matrix(np.array([[1, 2, 3, 4], [5, 0, 6, 8]]), targets)
    np.testing.assert_array_equal(hits, [[False, False, True, False], [True, False, False, True]])
    np.testing.assert_array_equal(m.n_relevant(targets), [2, 2])


def test_hits_matrix_rejects_misaligned_rows() -> None:
    with pytest.raises(ValueError, match="n_users=3"):
        m.hits_matrix(RANKED[:2], ONE_TARGET)


def test_hit_rate(hits: np.ndarray) -> None:
    # @4: ranks 1 and 3 are inside, user 2 misses. @2: rank 3 falls outside.
    np.testing.assert_array_equal(m.hit_rate(hits, 4), [1, 1, 0])
    np.testing.assert_array_equal(m.hit_rate(hits, 2), [1, 0, 0])


def test_ndcg_single_target(hits: np.ndarray) -> None:
    # IDCG = 1/log2(2) = 1. Rank 1: 1/log2(2) = 1. Rank 3: 1/log2(4) = 0.5. Absent: 0.
    np.testing.assert_allclose(m.ndcg(hits, np.ones(3), 4), [1.0, 0.5, 0.0])


def test_mrr(hits: np.ndarray) -> None:
    # 1/1, 1/3, 0; at k=2 the rank-3 hit no longer counts.
    np.testing.assert_allclose(m.mrr(hits, 4), [1.0, 1 / 3, 0.0])
    np.testing.assert_allclose(m.mrr(hits, 2), [1.0, 0.0, 0.0])


def test_precision_recall_f1_single_target(hits: np.ndarray) -> None:
    # One hit in a list of 4: precision 1/4, recall 1/1, F1 = 2 * 0.25 * 1 / 1.25 = 0.4. Absent: all 0.
    np.testing.assert_allclose(m.precision(hits, 4), [0.25, 0.25, 0.0])
    np.testing.assert_allclose(m.recall(hits, np.ones(3), 4), [1.0, 1.0, 0.0])
    np.testing.assert_allclose(m.f1(hits, np.ones(3), 4), [0.4, 0.4, 0.0])


def test_hit_rate_equals_recall_with_one_target(hits: np.ndarray) -> None:
    for k in (1, 2, 3, 4):
        np.testing.assert_array_equal(m.hit_rate(hits, k), m.recall(hits, np.ones(3), k))


def test_ndcg_two_relevant_items_uses_both_in_the_ideal() -> None:
    # Targets {2, 9}; list [5, 2, 7, 9]: hits at ranks 2 and 4.
    # DCG  = 1/log2(3) + 1/log2(5) = 0.63093 + 0.43068 = 1.06161
    # IDCG = 1/log2(2) + 1/log2(3) = 1 + 0.63093 = 1.63093  -> NDCG@4 = 0.65092
    # @2: DCG = 0.63093, IDCG still over min(2, 2) = 2 items -> 0.38685
    targets = Sequences.from_lists([0], [[2, 9]])
    hits = m.hits_matrix(np.array([[5, 2, 7, 9]]), targets)
    relevant = m.n_relevant(targets)
    expected4 = (1 / np.log2(3) + 1 / np.log2(5)) / (1 + 1 / np.log2(3))
    np.testing.assert_allclose(m.ndcg(hits, relevant, 4), [expected4])
    np.testing.assert_allclose(m.ndcg(hits, relevant, 4), [0.65092], atol=1e-5)
    np.testing.assert_allclose(m.ndcg(hits, relevant, 2), [0.38685], atol=1e-5)
    # Recall@4 = 2/2, Precision@4 = 2/4, F1 = 2 * 0.5 * 1 / 1.5 = 2/3; Recall@2 = 1/2, Precision@2 = 1/2.
    np.testing.assert_allclose(m.recall(hits, relevant, 4), [1.0])
    np.testing.assert_allclose(m.precision(hits, 4), [0.5])
    np.testing.assert_allclose(m.f1(hits, relevant, 4), [2 / 3])
    np.testing.assert_allclose(m.f1(hits, relevant, 2), [0.5])


def test_ndcg_ideal_is_capped_at_k() -> None:
    # Five relevant items, k = 2, both slots hit: IDCG uses min(5, 2) = 2 items, so NDCG = 1.
    targets = Sequences.from_lists([0], [[1, 2, 3, 4, 5]])
    hits = m.hits_matrix(np.array([[1, 2]]), targets)
    np.testing.assert_allclose(m.ndcg(hits, m.n_relevant(targets), 2), [1.0])


def test_rows_without_targets_score_zero_not_nan() -> None:
    targets = Sequences.from_lists([0], [[]])
    hits = m.hits_matrix(np.array([[1, 2]]), targets)
    relevant = m.n_relevant(targets)
    for values in m.per_user_metrics(hits, relevant, (1, 2)).values():
        np.testing.assert_array_equal(values, [0.0])


def test_per_user_metrics_keys_and_shapes(hits: np.ndarray) -> None:
    result = m.per_user_metrics(hits, np.ones(3), (2, 4))
    assert set(result) == {f"{name}@{k}" for k in (2, 4) for name in ("HR", "NDCG", "MRR", "Recall", "Precision", "F1")}
    assert all(values.shape == (3,) and values.dtype == np.float64 for values in result.values())


@pytest.mark.parametrize("k", [0, 5])
def test_cut_off_outside_the_list_is_an_error(hits: np.ndarray, k: int) -> None:
    with pytest.raises(ValueError, match="cut-off"):
        m.hit_rate(hits, k)


def test_repeated_targets_counts_distinct_targets_already_in_the_history() -> None:
    histories = Sequences.from_lists([0, 1, 2, 3], [[1, 2, 3], [4], [], [7, 7]])
    targets = Sequences.from_lists([0, 1, 2, 3], [[3, 3, 9], [5], [1], [7, 8]])
    np.testing.assert_array_equal(m.repeated_targets(histories, targets), [1, 0, 0, 1])
    with pytest.raises(ValueError, match="histories"):
        m.repeated_targets(histories.take([0]), targets)
