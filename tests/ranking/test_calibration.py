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
    chosen, _ = Calibration(0.9).rerank(Request(history, k=4), items, POOL, SCORES)
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
    assert stage.pool(Request(np.array([1]), k=4, calibration=0.5)) == 20
    chosen, _ = stage.rerank(Request(np.array([1, 2]), k=2, calibration=1.0), items, POOL, SCORES)
    assert chosen[:2].tolist() == [1, 2]
    assert sorted(chosen.tolist()) == sorted(POOL.tolist())  # the whole pool comes back, the chosen first
    with pytest.raises(ValueError, match="calibration must be in"):
        stage.pool(Request(np.array([1]), k=4, calibration=1.5))
    with pytest.raises(ValueError, match="calibration must be in"):
        Calibration(-0.1)
