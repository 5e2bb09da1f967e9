"""MMR on a hand-made catalogue with a known answer, and the knobs that combine with it (a tail floor after it,
popularity correction before it)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from shoprec.ranking.items import ItemIndex, index_items
from shoprec.ranking.recommend import Ranker
from shoprec.ranking.rerank import MMR, TailExposure
from shoprec.ranking.stages import PopularityCorrection
from shoprec.ranking.types import Request, Scores
from shoprec.storage.store import CatalogItem

# Nine items in three directions of the item space (no text vectors, so MMR measures similarity there): 1-3 along x,
# 4-6 along y, 7-9 along z (copies of each other).
# The model ranks by index, so its top three are three copies along x.
DIRECTIONS = np.repeat(np.eye(3, dtype=np.float32), 3, axis=0)
SCORES = np.array([0.0, 9, 8, 7, 6, 5, 4, 3, 2, 1])
POOL = np.arange(1, 10)
COUNTS = np.array([0, 900, 800, 700, 600, 50, 40, 3, 2, 1], dtype=np.float32)  # 5-9: the tail (bottom half)


@pytest.fixture
def items() -> ItemIndex:
    table = np.vstack([np.zeros((1, 3), dtype=np.float32), DIRECTIONS])
    records = [None, *(CatalogItem(f"i{i}") for i in range(1, 10))]
    return index_items(["", *(f"i{i}" for i in range(1, 10))], records, table=table, popularity=COUNTS)


def test_relevance_only_keeps_the_score_order_exactly(items: ItemIndex) -> None:
    """Diversity 0 (MMR's lambda = 1): the pool comes back as it was, the model's order."""
    chosen, note = MMR(0.0).rerank(Request(np.array([1]), k=3), items, POOL, SCORES)
    np.testing.assert_array_equal(chosen, POOL)
    assert note is None


def test_diversity_only_picks_the_most_diverse_list(items: ItemIndex) -> None:
    """Diversity 1 (lambda = 0): after the best item, one from each other direction, the best-scored of each."""
    chosen, _ = MMR(1.0).rerank(Request(np.array([1]), k=3), items, POOL, SCORES)
    assert chosen[:3].tolist() == [1, 4, 7]
    assert sorted(chosen.tolist()) == POOL.tolist()  # the rest of the pool follows for a later stage


def test_a_sure_model_keeps_its_near_copies_and_an_unsure_one_diversifies(items: ItemIndex) -> None:
    """Relevance is the model's probability of the item (in percentage points, discounted by slot). Scores 9, 8, 7,
    ... make item 2 (a copy of 1) 23% likely and item 4 3%: at diversity 0.8 the copy is still worth its similarity
    in the second slot, not in the third. Scores a tenth as far apart make the nine about equally likely (14% to
    7%), and the list takes one item from each direction."""
    sure, _ = MMR(0.8).rerank(Request(np.array([1]), k=3), items, POOL, SCORES)
    assert sure[:3].tolist() == [1, 2, 4]
    unsure, _ = MMR(0.8).rerank(Request(np.array([1]), k=3), items, POOL, SCORES / 10)
    assert unsure[:3].tolist() == [1, 4, 7]
    assert MMR(0.5).rerank(Request(np.array([1]), k=3), items, POOL, SCORES)[0][:3].tolist() == [1, 2, 3]


def test_a_tail_floor_after_mmr_keeps_its_list_and_swaps_the_last_head_pick(items: ItemIndex) -> None:
    """MMR(1) gives [1, 4, 7, 2], one tail item (7); a floor of two in four swaps MMR's last non-tail pick (2)
    for the best-placed tail item not shown (5), and the list keeps MMR's order."""
    assert np.flatnonzero(items.tail).tolist() == [5, 6, 7, 8, 9]
    scorer = FixedScores(SCORES)
    request = Request(np.array([], dtype=np.int64), k=4, exclude_seen=False)
    mmr_only = Ranker(scorer, filters=(), rerankers=(MMR(1.0),)).rank([request], items)[0]
    assert mmr_only.items.tolist() == [1, 4, 7, 2]
    floored = Ranker(scorer, filters=(), rerankers=(MMR(1.0), TailExposure(0.5))).rank([request], items)[0]
    assert floored.items.tolist() == [1, 4, 7, 5]


def test_popularity_correction_divides_out_a_power_of_the_count(items: ItemIndex) -> None:
    """score - strength x log(1 + count) on personal rows; a non-personal row (the popularity list) is left alone."""
    corrected = PopularityCorrection(FixedScores(SCORES), 0.5)
    got = corrected.score([Request(np.array([1]), k=3)], items, np.ones((1, 10), dtype=bool)).total[0]
    np.testing.assert_allclose(got, SCORES - 0.5 * np.log1p(COUNTS), rtol=1e-6)
    assert got[7] > got[6]  # an item bought 3 times now beats one bought 40 times that scored higher
    anonymous = PopularityCorrection(FixedScores(SCORES, personal=False), 0.5)
    np.testing.assert_array_equal(
        anonymous.score([Request(np.array([1]), k=3)], items, np.ones((1, 10))).total[0], SCORES
    )
    from_request = PopularityCorrection(FixedScores(SCORES))
    asked = Request(np.array([1]), k=3, popularity_correction=0.5)
    np.testing.assert_allclose(from_request.score([asked], items, np.ones((1, 10))).total[0], got)
    with pytest.raises(ValueError, match="popularity_correction must be in"):
        PopularityCorrection(FixedScores(SCORES), 1.5)


class FixedScores:
    """The same scores for every request (a stand-in model)."""

    def __init__(self, scores: np.ndarray, personal: bool = True) -> None:
        self.scores, self.personal = scores, personal

    def score(self, requests: object, items: ItemIndex, allowed: np.ndarray) -> Scores:
        total = np.tile(self.scores.astype(np.float32), (len(allowed), 1))
        return Scores(total, {}, np.full(len(allowed), self.personal))


def test_similarity_is_over_the_text_when_every_item_has_one(items: ItemIndex) -> None:
    """Text directions cut across the model's: by text, items 1, 2, 3 are unlike each other and 1, 4, 7 alike. With a
    text vector for every item, diversity follows the text; with one item missing its text, the model's space."""
    text = np.vstack([np.zeros((1, 3)), np.tile(np.eye(3), (3, 1))]).astype(np.float32)  # item i -> axis (i - 1) % 3
    by_text, _ = MMR(1.0).rerank(Request(np.array([1]), k=3), replace(items, search=text), POOL, SCORES)
    assert by_text[:3].tolist() == [1, 2, 3]
    text[5] = 0.0
    by_model, _ = MMR(1.0).rerank(Request(np.array([1]), k=3), replace(items, search=text), POOL, SCORES)
    assert by_model[:3].tolist() == [1, 4, 7]
