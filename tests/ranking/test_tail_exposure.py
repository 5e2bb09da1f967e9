"""The exposure floors (long tail, small providers): a constrained greedy with a known answer on hand-made
catalogues."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.ranking.items import ItemIndex, index_items
from shoprec.ranking.rerank import PROVIDERS_SHORT, TAIL_SHORT, ExposureFloors, ProviderExposure, TailExposure
from shoprec.ranking.types import Request
from shoprec.storage.store import CatalogItem


@pytest.fixture
def items() -> ItemIndex:
    """Twelve items; training counts fall with the index, so items 7-12 are the tail (the bottom half)."""
    records = [None, *(CatalogItem(f"i{i}") for i in range(1, 13))]
    popularity = np.array([0, 120, 110, 100, 90, 80, 70, 6, 5, 4, 3, 2, 1], dtype=np.float32)
    return index_items(["", *(f"i{i}" for i in range(1, 13))], records, table=None, popularity=popularity)


SCORES = np.array([0.0, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1])  # the model ranks by popularity
POOL = np.arange(1, 13)  # best first


def test_the_tail_items_are_the_bottom_half(items: ItemIndex) -> None:
    assert np.flatnonzero(items.tail).tolist() == [7, 8, 9, 10, 11, 12]


def test_a_floor_swaps_the_weakest_head_items_for_the_best_tail_ones(items: ItemIndex) -> None:
    chosen, note = TailExposure(0.5).rerank(Request(np.array([1]), k=4), items, POOL, SCORES)
    assert chosen[:4].tolist() == [1, 2, 7, 8] and note is None  # 2 of 4 slots, the list still in score order
    assert chosen[4:].tolist() == [3, 4, 5, 6, 9, 10, 11, 12]  # the rest of the pool follows for a later stage
    chosen, _ = TailExposure(0.25).rerank(Request(np.array([1]), k=4), items, POOL, SCORES)
    assert chosen[:4].tolist() == [1, 2, 3, 7]  # ceil(0.25 x 4) = 1 slot
    chosen, _ = TailExposure(0.3).rerank(Request(np.array([1]), k=4), items, POOL, SCORES)
    assert chosen[:4].tolist() == [1, 2, 7, 8]  # ceil(1.2) = 2: a floor rounds up


def test_zero_a_met_floor_and_a_short_pool(items: ItemIndex) -> None:
    history = np.array([1])
    np.testing.assert_array_equal(TailExposure(0.0).rerank(Request(history, k=4), items, POOL, SCORES)[0], POOL)
    tail_first = np.array([7, 8, 1, 2, 3])
    assert TailExposure(0.5).rerank(Request(history, k=4), items, tail_first, SCORES)[0] is tail_first
    chosen, note = TailExposure(1.0).rerank(Request(history, k=4), items, np.array([1, 2, 3, 4, 5, 7]), SCORES)
    assert chosen[:4].tolist() == [1, 2, 3, 7] and note == TAIL_SHORT
    assert TailExposure().pool(Request(history, k=4, tail_share=0.5)) == 80
    with pytest.raises(ValueError, match="tail_share must be in"):
        TailExposure(2.0)


def test_a_provider_floor_gives_small_brands_their_share() -> None:
    """Brand A sells items 1-4 (900 interactions), B items 5-6 (50), C items 7-8 (3), D item 9 (no
    interactions): the small providers are the bottom half of the four brands, C and D (ceil(0.5 x 4) = 2), so
    items 7-9. The model ranks by index; a floor of half of four slots swaps the two weakest for 7 and 8."""
    brands = ["", "A", "A", "A", "A", "B", "B", "C", "C", "D"]
    records = [None, *(CatalogItem(f"i{i}", brand=brands[i]) for i in range(1, 10))]
    counts = np.array([0, 300, 250, 200, 150, 30, 20, 2, 1, 0], dtype=np.float32)
    items = index_items(["", *(f"i{i}" for i in range(1, 10))], records, table=None, popularity=counts)
    assert np.flatnonzero(items.small_provider).tolist() == [7, 8, 9]
    pool, scores = np.arange(1, 10), np.array([0.0, 9, 8, 7, 6, 5, 4, 3, 2, 1])
    chosen, note = ProviderExposure(0.5).rerank(Request(np.array([1]), k=4), items, pool, scores)
    assert chosen[:4].tolist() == [1, 2, 7, 8] and note is None
    chosen, note = ProviderExposure(1.0).rerank(Request(np.array([1]), k=4), items, pool, scores)
    assert chosen[:4].tolist() == [1, 7, 8, 9] and note == PROVIDERS_SHORT  # only three small-provider items
    assert ProviderExposure().pool(Request(np.array([1]), k=4, provider_share=0.25)) == 80


def test_two_floors_together_both_hold() -> None:
    """Item 5 is popular (not tail) but its brand S is small; items 9-10 are brand T's, small and tail. The model
    ranks by index. A quarter for small providers brings in 5; half for the tail then swaps out 3 and 2 for 6 and
    7, never 5, which the provider floor needs. A tail floor run after a provider floor would have dropped 5."""
    brands = ["", "A", "A", "A", "A", "S", "A", "A", "A", "T", "T"]
    counts = np.array([0, 100, 90, 80, 70, 60, 5, 4, 3, 2, 1], dtype=np.float32)
    records = [None, *(CatalogItem(f"i{i}", brand=brands[i]) for i in range(1, 11))]
    items = index_items(["", *(f"i{i}" for i in range(1, 11))], records, table=None, popularity=counts)
    assert np.flatnonzero(items.tail).tolist() == [6, 7, 8, 9, 10]
    assert np.flatnonzero(items.small_provider).tolist() == [5, 9, 10]
    pool, scores = np.arange(1, 11), np.arange(11, 0, -1).astype(np.float64)
    request = Request(np.array([1]), k=4)
    both = ExposureFloors((ProviderExposure(0.25), TailExposure(0.5)))
    chosen, note = both.rerank(request, items, pool, scores)
    assert chosen[:4].tolist() == [1, 5, 6, 7] and note is None
    one_after_the_other, _ = TailExposure(0.5).rerank(
        request, items, ProviderExposure(0.25).rerank(request, items, pool, scores)[0], scores
    )
    assert one_after_the_other[:4].tolist() == [1, 2, 6, 7]  # the small brand lost its slot
    chosen, note = ExposureFloors((ProviderExposure(1.0), TailExposure(0.5))).rerank(request, items, pool, scores)
    assert chosen[:4].tolist() == [1, 5, 9, 10] and note == PROVIDERS_SHORT  # only three small-provider items
