"""The evaluation path: top-k masking and order, chunked ranking, and evaluate() on known answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shoprec.data.split import EvalSet
from shoprec.evaluation import beyond
from shoprec.evaluation.protocol import EvalResult, evaluate, rank, top_k
from shoprec.evaluation.report import gaps_table, markdown_table, slices_table
from shoprec.types import Sequences

N_ITEMS = 31  # score width: padding + 30 real items


class MatrixScorer:
    """Looks each row's scores up by user index and records every batch size it was asked for."""

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = matrix
        self.batch_sizes: list[int] = []

    def score(self, histories: Sequences) -> np.ndarray:
        self.batch_sizes.append(len(histories))
        return self.matrix[histories.users]


def descending_index_scorer(n_users: int) -> MatrixScorer:
    """Item i scores -i for everyone, so the ranking is 1, 2, 3, ... minus the seen items."""
    return MatrixScorer(np.tile(-np.arange(N_ITEMS, dtype=np.float32), (n_users, 1)))


def reference_top_k(scores: np.ndarray, k: int, exclude: list[list[int]]) -> np.ndarray:
    """Brute force: full sort by (score desc, index asc), masked items dropped, 0 for empty slots."""
    out = np.zeros((len(scores), k), dtype=np.int64)
    for row, values in enumerate(scores):
        order = np.lexsort((np.arange(len(values)), -values))
        valid = [i for i in order if i != 0 and i not in exclude[row] and values[i] != -np.inf][:k]
        out[row, : len(valid)] = valid
    return out


def random_case(seed: int, n_users: int = 40) -> tuple[np.ndarray, list[list[int]]]:
    """Integer scores in 0..3, so ties are everywhere, and random histories of 0..8 items."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, (n_users, N_ITEMS)).astype(np.float32)
    histories = [
        list(rng.choice(np.arange(1, N_ITEMS), size=rng.integers(0, 9), replace=False)) for _ in range(n_users)
    ]
    return scores, histories


# --- top_k ---------------------------------------------------------------------------------------------------


def test_top_k_never_returns_padding_or_seen_items() -> None:
    scores = np.array([[100.0, 5, 4, 3, 2, 1]])  # padding scores highest
    ranked = top_k(scores, 3, Sequences.from_lists([0], [[1, 3]]))
    np.testing.assert_array_equal(ranked, [[2, 4, 5]])


def test_top_k_orders_by_descending_score() -> None:
    scores = np.array([[0.0, 0.1, 0.9, 0.5, 0.7], [0.0, 3, 1, 2, 4]])
    np.testing.assert_array_equal(top_k(scores, 4, None), [[2, 4, 3, 1], [4, 1, 3, 2]])


def test_top_k_breaks_ties_by_lower_item_index() -> None:
    # All equal: exactly items 1..k. With a tie straddling the cut, the lower indices of the tied group win.
    np.testing.assert_array_equal(top_k(np.zeros((2, 50)), 4, None), [[1, 2, 3, 4]] * 2)
    scores = np.zeros((1, 50))
    scores[0, [40, 45]] = 1.0
    np.testing.assert_array_equal(top_k(scores, 4, None), [[40, 45, 1, 2]])


@pytest.mark.parametrize("seed", range(5))
def test_top_k_matches_a_full_sort(seed: int) -> None:
    scores, histories = random_case(seed)
    exclude = Sequences.from_lists(range(len(histories)), histories)
    np.testing.assert_array_equal(top_k(scores, 10, exclude), reference_top_k(scores, 10, histories))


@pytest.mark.parametrize("seed", range(3))
def test_an_allowed_mask_masks_as_exclusion_does(seed: int) -> None:
    """What the ranker passes (a mask of allowed items) ranks exactly as the same items excluded, ties included."""
    scores, histories = random_case(seed)
    allowed = np.ones(scores.shape, dtype=bool)
    for row, history in enumerate(histories):
        allowed[row, history] = False
    ranked = top_k(scores, 10, allowed=allowed)
    np.testing.assert_array_equal(ranked, reference_top_k(scores, 10, histories))
    np.testing.assert_array_equal(ranked, top_k(scores, 10, Sequences.from_lists(range(len(histories)), histories)))


def test_top_k_fills_rows_without_enough_items_with_padding() -> None:
    # Items 1..4; 1 and 2 are seen, 4 is scored -inf: only item 3 is a valid recommendation.
    scores = np.array([[0.0, 9, 8, 1, -np.inf]])
    ranked = top_k(scores, 3, Sequences.from_lists([0], [[1, 2]]))
    np.testing.assert_array_equal(ranked, [[3, 0, 0]])


def test_top_k_leaves_its_input_untouched() -> None:
    scores = np.arange(12, dtype=np.float32).reshape(2, 6)
    before = scores.copy()
    top_k(scores, 2, Sequences.from_lists([0, 1], [[5], [4]]))
    np.testing.assert_array_equal(scores, before)


def test_top_k_rejects_nan_and_bad_k() -> None:
    with pytest.raises(ValueError, match="NaN"):
        top_k(np.array([[0.0, np.nan, 1.0]]), 1, None)
    with pytest.raises(ValueError, match="k=3"):
        top_k(np.zeros((1, 3)), 3, None)


# --- rank ----------------------------------------------------------------------------------------------------


def test_rank_is_identical_for_any_chunk_size_and_respects_it() -> None:
    scores, histories = random_case(7, n_users=23)
    sequences = Sequences.from_lists(range(23), histories)
    results = []
    for chunk_size in (1, 7, 1024):
        scorer = MatrixScorer(scores)
        results.append(rank(scorer, sequences, 10, chunk_size=chunk_size))
        assert max(scorer.batch_sizes) <= chunk_size
        assert sum(scorer.batch_sizes) == 23
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])
    np.testing.assert_array_equal(results[0], reference_top_k(scores, 10, histories))


def test_rank_reports_rows_done_after_each_chunk() -> None:
    sequences = Sequences.from_lists(range(10), [[1]] * 10)
    done: list[int] = []
    rank(descending_index_scorer(10), sequences, 3, chunk_size=4, on_chunk=done.append)
    assert done == [4, 8, 10]


def test_rank_can_keep_seen_items() -> None:
    sequences = Sequences.from_lists([0], [[1, 2]])
    np.testing.assert_array_equal(rank(descending_index_scorer(1), sequences, 3), [[3, 4, 5]])
    np.testing.assert_array_equal(rank(descending_index_scorer(1), sequences, 3, exclude_seen=False), [[1, 2, 3]])


def test_rank_rejects_a_wrong_score_shape() -> None:
    sequences = Sequences.from_lists([0], [[1]])
    with pytest.raises(ValueError, match="expected"):
        rank(descending_index_scorer(1), sequences, 3, n_items=40)


# --- evaluate ------------------------------------------------------------------------------------------------

# With item i scoring -i, each user's ranking is 1, 2, 3, ... without their history:
# user 0 saw [1]     -> 2, 3, 4, ...                   target 2  at rank 1
# user 1 saw [2, 3]  -> 1, 4, 5, 6, ...                target 6  at rank 4
# user 2 saw [4]     -> 1, 2, 3, 5, 6, ..., 12         target 12 at rank 11
# user 3 saw [5]     -> 1, 2, 3, 4, 6, ..., 29         target 29 at rank 28 (outside every cut-off)
KNOWN = EvalSet(
    histories=Sequences.from_lists([0, 1, 2, 3], [[1], [2, 3], [4], [5]]),
    targets=Sequences.from_lists([0, 1, 2, 3], [[2], [6], [12], [29]]),
)
# Training counts: items 1..6 are popular (head = ceil(0.2 * 30) = 6 items), the rest have 1 interaction.
POPULARITY = np.array([0] + [10] * 6 + [1] * 24)


def test_evaluate_known_ranks() -> None:
    result = evaluate(descending_index_scorer(4), KNOWN, POPULARITY)
    expected = {
        "HR@5": (1 + 1) / 4,
        "HR@10": (1 + 1) / 4,
        "HR@20": (1 + 1 + 1) / 4,
        "NDCG@5": (1 + 1 / np.log2(5)) / 4,  # (1 + 0.43068) / 4 = 0.35767
        "NDCG@20": (1 + 1 / np.log2(5) + 1 / np.log2(12)) / 4,
        "MRR@20": (1 + 1 / 4 + 1 / 11) / 4,
        "Precision@5": (1 / 5 + 1 / 5) / 4,
        "Recall@20": 3 / 4,
        # Top-5 lists: {2..6}, {1, 4..7}, {1, 2, 3, 5, 6}, {1, 2, 3, 4, 6}: 7 distinct of 30 items.
        "Coverage@5": 7 / 30,
        # Of the 20 recommended slots, 19 hold items 1..6 (10 interactions each) and one item 7 (1 interaction).
        "MeanPop@5": (19 * 10 + 1 * 1) / 20,
        # Head = items 1..6, tail = the bottom 15 by popularity (items 16..30), mid = 7..15: 19 head slots, 1 mid.
        "ExposureHead@5": 19 / 20,
        "ExposureMid@5": 1 / 20,
        "ExposureTail@5": 0.0,
    }
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value), name
    assert result.n_users == 4
    np.testing.assert_array_equal(result.per_user["HR@20"], [1, 1, 1, 0])


def test_evaluate_slices() -> None:
    result = evaluate(descending_index_scorer(4), KNOWN, POPULARITY)
    slices = {(s.kind, s.name): s for s in result.slices}
    # Every history has 1-2 items, so the other length buckets are dropped.
    assert [key for key in slices if key[0] == "history_length"] == [("history_length", "1-4")]
    # Targets 2 and 6 are head items (users 0, 1: both hit at 20), 12 and 29 tail (user 2 hits, user 3 misses).
    assert slices["target_popularity", "head"].n_users == 2
    assert slices["target_popularity", "head"].metrics["HR@20"] == pytest.approx(1.0)
    assert slices["target_popularity", "tail"].metrics["HR@20"] == pytest.approx(0.5)
    assert slices["target_popularity", "tail"].metrics["NDCG@10"] == pytest.approx(0.0)


def test_history_length_buckets() -> None:
    lengths = [1, 4, 5, 12, 60]
    histories = Sequences.from_lists(range(5), [list(range(1, n + 1)) for n in lengths])
    scorer = MatrixScorer(np.tile(-np.arange(100, dtype=np.float32), (5, 1)))
    eval_set = EvalSet(histories, Sequences.from_lists(range(5), [[99]] * 5))
    result = evaluate(scorer, eval_set, np.ones(100, dtype=np.int64))
    counts = {s.name: s.n_users for s in result.slices if s.kind == "history_length"}
    assert counts == {"1-4": 2, "5-9": 1, "10-19": 1, "50+": 1}


def test_the_audit_measures_the_lists_evaluate_ranked_and_the_history_length_gap() -> None:
    """ILD and calibration are those of the top-k lists themselves; the group gap compares history-length groups
    (here one user each: users with 1-4 items are hit at rank 1, the user with 60 is not hit) and survives JSON."""
    lengths = [1, 4, 5, 12, 60]
    histories = Sequences.from_lists(range(5), [list(range(1, n + 1)) for n in lengths])
    scorer = MatrixScorer(np.tile(-np.arange(100, dtype=np.float32), (5, 1)))
    targets = [[n + 1] for n in lengths[:-1]] + [[99]]  # each the first unseen item, except for the last user
    eval_set = EvalSet(histories, Sequences.from_lists(range(5), targets))
    rng = np.random.default_rng(0)
    vectors, categories = rng.normal(size=(100, 8)), np.eye(3)[rng.integers(0, 3, 100)]
    result = evaluate(scorer, eval_set, np.ones(100, dtype=np.int64), item_vectors=vectors, item_categories=categories)
    top10 = rank(scorer, histories, 10)
    assert result.metrics["ILD@10"] == pytest.approx(beyond.intra_list_diversity(top10, vectors))
    assert result.metrics["CalibrationKL@10"] == pytest.approx(beyond.calibration_kl(histories, top10, categories))
    gaps = {gap.metric: gap for gap in result.gaps}
    assert set(gaps) == {"HR@10", "NDCG@10"}
    assert (gaps["HR@10"].worst, gaps["HR@10"].gap) == ("50+", 1.0)
    assert EvalResult.from_dict(json.loads(json.dumps(result.to_dict()))).gaps == result.gaps
    assert evaluate(scorer, eval_set, np.ones(100, dtype=np.int64), group_gaps=False).gaps == []
    table = gaps_table(result).splitlines()
    assert len(table) == 4 and "| history_length | HR@10 |" in table[2] and "50+ (0.0000)" in table[2]


def test_user_attributes_give_slices_and_a_gap_per_attribute() -> None:
    """KNOWN's users 0 and 1 are hit at 20, 2 is hit, 3 is not: by gender (0, 2 female; 1, 3 male) HR@20 is 1 and
    0.5; the user-index labels follow each evaluated row, and a user without a label is in no group."""
    attributes = pd.DataFrame(
        {"gender": ["female", "male", "female", "male"], "age": ["18-24", None, "18-24", "56+"]},
        index=pd.RangeIndex(0, 4),
        dtype=object,
    )
    result = evaluate(descending_index_scorer(4), KNOWN, POPULARITY, ks=(20,), user_attributes=attributes)
    slices = {(s.kind, s.name): s for s in result.slices}
    assert slices["gender", "female"].metrics["HR@20"] == 1.0 and slices["gender", "male"].metrics["HR@20"] == 0.5
    assert slices["age", "18-24"].n_users == 2 and slices["age", "56+"].n_users == 1
    gaps = {(gap.kind, gap.metric): gap for gap in result.gaps}
    assert (gaps["gender", "HR@20"].best, gaps["gender", "HR@20"].gap) == ("female", 0.5)
    assert ("age", "NDCG@20") in gaps and ("history_length", "HR@20") not in gaps  # one length bucket only


def test_evaluate_with_several_targets_per_user() -> None:
    # User 0 saw [1]; ranking 2, 3, 4, 5, 6. Targets {3, 9}: one of two found in the top 5.
    eval_set = EvalSet(Sequences.from_lists([0], [[1]]), Sequences.from_lists([0], [[3, 9]]))
    result = evaluate(descending_index_scorer(1), eval_set, POPULARITY, ks=(5,))
    assert result.metrics["HR@5"] == 1.0
    assert result.metrics["Recall@5"] == pytest.approx(0.5)
    # DCG = 1/log2(3) (rank 2); IDCG = 1 + 1/log2(3).
    assert result.metrics["NDCG@5"] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))


def test_evaluate_is_identical_for_any_chunk_size() -> None:
    scores, histories = random_case(3, n_users=30)
    rng = np.random.default_rng(11)
    eval_set = EvalSet(
        Sequences.from_lists(range(30), histories),
        Sequences.from_lists(range(30), [[int(t)] for t in rng.integers(1, N_ITEMS, 30)]),
    )
    popularity = np.concatenate([[0], rng.integers(0, 50, N_ITEMS - 1)])
    results = [evaluate(MatrixScorer(scores), eval_set, popularity, chunk_size=c) for c in (1, 7, 1024)]
    for other in results[1:]:
        assert other.to_dict() == results[0].to_dict()
        for name, values in results[0].per_user.items():
            np.testing.assert_array_equal(other.per_user[name], values)


def test_evaluate_result_is_json_friendly() -> None:
    result = evaluate(descending_index_scorer(4), KNOWN, POPULARITY)
    payload = result.to_dict()
    assert json.loads(json.dumps(payload)) == payload
    assert "per_user" not in payload
    for k in (5, 10, 20):
        for name in ("HR", "NDCG", "MRR", "Recall", "Precision", "F1", "Coverage", "Gini", "MeanPop", "Novelty"):
            assert f"{name}@{k}" in payload["metrics"]


def test_a_repeat_target_is_counted_and_can_never_be_hit() -> None:
    # User 1 bought item 2 before and buys it again: item 2 is masked as seen, so the perfect scorer still misses.
    eval_set = EvalSet(Sequences.from_lists([0, 1], [[1], [2, 3]]), Sequences.from_lists([0, 1], [[2], [2]]))
    result = evaluate(descending_index_scorer(2), eval_set, POPULARITY)
    assert result.n_repeat_targets == 1
    np.testing.assert_array_equal(result.per_user["HR@20"], [1, 0])
    assert result.to_dict()["n_repeat_targets"] == 1
    assert evaluate(descending_index_scorer(4), KNOWN, POPULARITY).n_repeat_targets == 0


def test_result_survives_its_json_round_trip() -> None:
    result = evaluate(descending_index_scorer(4), KNOWN, POPULARITY)
    payload = json.loads(json.dumps(result.to_dict()))
    assert EvalResult.from_dict(payload).to_dict() == result.to_dict()


def test_evaluate_rejects_mismatched_popularity_and_empty_sets() -> None:
    with pytest.raises(ValueError, match="expected"):
        evaluate(descending_index_scorer(4), KNOWN, np.ones(N_ITEMS + 1))
    empty = EvalSet(Sequences.from_lists([], []), Sequences.from_lists([], []))
    with pytest.raises(ValueError, match="no users"):
        evaluate(descending_index_scorer(1), empty, POPULARITY)


# --- report --------------------------------------------------------------------------------------------------


def test_markdown_table() -> None:
    result = EvalResult(metrics={"HR@10": 0.123456, "NDCG@10": 0.5}, n_users=1200)
    table = markdown_table([("pop", result), ("a|b", result)], ["NDCG@10", "HR@10"])
    assert table.splitlines() == [
        "| model | users | NDCG@10 | HR@10 |",
        "| --- | ---: | ---: | ---: |",
        "| pop | 1,200 | 0.5000 | 0.1235 |",
        "| a\\|b | 1,200 | 0.5000 | 0.1235 |",
    ]
    with pytest.raises(ValueError, match="HR@11"):
        markdown_table([("pop", result)], ["HR@11"])


def test_slices_table() -> None:
    lines = slices_table(evaluate(descending_index_scorer(4), KNOWN, POPULARITY)).splitlines()
    assert lines[0].startswith("| slice | group | users | HR@5 | NDCG@5 |")
    assert lines[2].startswith("| history_length | 1-4 | 4 | 0.5000 |")
    assert len(lines) == 2 + 3  # one length bucket, head, tail
