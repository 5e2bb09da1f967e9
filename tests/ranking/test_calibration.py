"""Category calibration (Steck, RecSys 2018) as a re-ranking stage, on a hand-made catalogue with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.ranking.items import ItemIndex, index_items
from shoprec.ranking.rerank import CALIBRATION_NOT_APPLIED, Calibration
from shoprec.ranking.types import Request
from shoprec.storage.store import CatalogItem

NAILS, FACE = "Shop > Makeup > Nails > Polish", "Shop > Skin Care > Face"


@pytest.fixture
def items() -> ItemIndex:
    """Items 1-6 are nail polish, 7-12 face care (the audit's level: "Nails" and "Face"), 13 has no category."""
    records = [None] + [CatalogItem(f"n{i}", category=NAILS) for i in range(1, 7)]
    records += [CatalogItem(f"f{i}", category=FACE) for i in range(7, 13)] + [CatalogItem("bare")]
    return index_items([""] + [r.item_id for r in records[1:] if r], records, table=None, popularity=np.ones(14))


# The model prefers face care: scores fall with the index within each category, every face item above every nail one.
SCORES = np.array([0.0, 6, 5, 4, 3, 2, 1, 16, 15, 14, 13, 12, 11, 0.5])
POOL = np.argsort(-SCORES, kind="stable")[:-1]  # best first, padding left out


def categories(items: ItemIndex, chosen: np.ndarray) -> list[int]:
    return items.category_groups[chosen].tolist()


def test_a_one_category_history_gets_that_category(items: ItemIndex) -> None:
    nails = items.category_groups[1]
    history = np.array([1, 2])
    chosen, note = Calibration(1.0).rerank(Request(history, k=4), items, POOL, SCORES)
    assert note is None and categories(items, chosen[:4]) == [nails] * 4
    chosen, _ = Calibration(0.999).rerank(Request(history, k=4), items, POOL, SCORES)
    assert categories(items, chosen[:4]) == [nails] * 4
    assert chosen[:4].tolist() == [1, 2, 3, 4]  # among equals, relevance still orders (seen items are a filter's job)


def test_zero_keeps_the_model_order_and_a_mixed_history_gets_its_mix(items: ItemIndex) -> None:
    history = np.array([1, 7])  # half nails, half face
    plain, _ = Calibration(0.0).rerank(Request(history, k=4), items, POOL, SCORES)
    np.testing.assert_array_equal(plain, POOL)
    calibrated, _ = Calibration(0.99).rerank(Request(history, k=4), items, POOL, SCORES)
    assert sorted(categories(items, calibrated[:4])) == sorted(
        [items.category_groups[1]] * 2 + [items.category_groups[7]] * 2
    )
    assert calibrated.tolist()[:2] == [7, 1]  # the best face item, then the best nail one


def test_a_history_without_categories_leaves_the_order_and_says_so(items: ItemIndex) -> None:
    chosen, note = Calibration(1.0).rerank(Request(np.array([13]), k=3), items, POOL, SCORES)
    np.testing.assert_array_equal(chosen, POOL)
    assert note == CALIBRATION_NOT_APPLIED


def test_the_knob_comes_from_the_request_and_is_checked(items: ItemIndex) -> None:
    stage = Calibration()
    assert stage.pool(Request(np.array([1]), k=4)) == 4  # off: no larger pool
    assert stage.pool(Request(np.array([1]), k=4, calibration=0.5)) == 80
    chosen, _ = stage.rerank(Request(np.array([1, 2]), k=2, calibration=1.0), items, POOL, SCORES)
    assert chosen[:2].tolist() == [1, 2]
    assert sorted(chosen.tolist()) == sorted(POOL.tolist())  # the whole pool comes back, the chosen first
    with pytest.raises(ValueError, match="calibration must be in"):
        stage.pool(Request(np.array([1]), k=4, calibration=1.5))
    with pytest.raises(ValueError, match="calibration must be in"):
        Calibration(-0.1)


# Closer scores than SCORES, so the model's probabilities spread over several items of both categories.
NEAR = np.array([-np.inf, 2.0, 1.5, 1.0, 0.5, 0.0, -0.5, 4.0, 3.5, 3.0, 2.5, 2.0, 1.5, -6.0])  # padding: -inf
NEAR_POOL = np.argsort(-NEAR, kind="stable")[:-1]  # item 13 last


def test_the_pool_s_width_and_a_shift_of_the_scores_do_not_move_the_knob(items: ItemIndex) -> None:
    """The trade-off is in the model's probabilities, so an unlikely candidate more in the pool (item 13, far below
    the rest) changes no other's relevance, as neither does adding a constant to every score. Scaled to [0, 1] over
    the pool, item 13 set the scale's zero and the same knob gave [7, 8, 9, 1] without it, [7, 1, 8, 9] with it."""
    request = Request(np.array([1, 7]), k=4)
    narrow = NEAR_POOL[NEAR_POOL != 13]
    chosen, _ = Calibration(0.92).rerank(request, items, narrow, NEAR)
    assert chosen[:4].tolist() == [7, 1, 8, 9]
    wide, _ = Calibration(0.92).rerank(request, items, NEAR_POOL, NEAR)
    shifted, _ = Calibration(0.92).rerank(request, items, NEAR_POOL, NEAR + 5.0)
    assert wide[:4].tolist() == shifted[:4].tolist() == [7, 1, 8, 9]


def test_a_sure_model_keeps_its_pick_and_an_unsure_one_gives_it_up(items: ItemIndex) -> None:
    """The same order with wider margins is a surer model: the history leans to nails, and at the same knob the
    unsure model's list opens with a nail item, the sure one's with the face item it is sure of. Scores scaled to
    [0, 1] over the pool are alike for both and gave both [7, 1, 8, 9]."""
    request = Request(np.array([1, 2, 7]), k=4)
    unsure, _ = Calibration(0.92).rerank(request, items, NEAR_POOL, NEAR * 0.5)
    sure, _ = Calibration(0.92).rerank(request, items, NEAR_POOL, NEAR * 3.0)
    assert unsure[:4].tolist() == [1, 7, 8, 2]
    assert sure[:4].tolist() == [7, 1, 8, 2]


def test_an_item_the_model_cannot_score_has_no_probability(items: ItemIndex) -> None:
    """-inf (an item added after training) is left out of the softmax instead of making it NaN."""
    scores = NEAR.copy()
    scores[13] = -np.inf
    chosen, _ = Calibration(0.92).rerank(Request(np.array([1, 7]), k=4), items, NEAR_POOL[:-1], scores)
    assert chosen[:4].tolist() == [7, 1, 8, 9]
