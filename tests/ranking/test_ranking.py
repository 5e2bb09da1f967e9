"""The ranking pipeline on a real Beauty slice: offline it ranks exactly as the evaluation protocol does, its
filters hold whatever the history's length, and its explanations are the scores they claim."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.data.dataset import Dataset
from shoprec.data.split import hold_out_last
from shoprec.evaluation.protocol import rank
from shoprec.models.base import TrainData
from shoprec.models.itemknn import ItemKNN
from shoprec.models.pop import Pop
from shoprec.ranking.explain import occlusion
from shoprec.ranking.items import catalog_records, index_items, model_items
from shoprec.ranking.recommend import OfflineRanking, Ranker, rankers_for, search_ranker
from shoprec.ranking.rerank import MMR
from shoprec.ranking.stages import (
    BRAND_NOT_APPLIED,
    Brand,
    Category,
    ModelScorer,
    Price,
    TextMatches,
    TextRelevance,
    model_scorer,
)
from shoprec.ranking.types import Ranked, Request
from shoprec.storage.store import CatalogItem
from shoprec.types import Sequences


@pytest.fixture(scope="module")
def itemknn(beauty: Dataset) -> ItemKNN:
    train, _ = hold_out_last(beauty.sequences)
    model = ItemKNN()
    model.fit(TrainData(beauty.items.size, train))
    return model


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_offline_ranking_is_the_evaluated_ranking(itemknn: ItemKNN, beauty: Dataset, exclude_seen: bool) -> None:
    """The composed pipeline, handed to the protocol, ranks exactly as the protocol ranks the bare model."""
    histories = beauty.sequences.take(np.arange(300))
    ranker = OfflineRanking(Ranker(model_scorer(itemknn)), model_items(itemknn, beauty.items.ids))
    composed = rank(ranker, histories, 20, chunk_size=64, exclude_seen=exclude_seen)
    bare = rank(itemknn, histories, 20, chunk_size=64, exclude_seen=exclude_seen)
    np.testing.assert_array_equal(composed, bare)


def test_seen_items_are_excluded_however_long_the_history(beauty: Dataset) -> None:
    pop = Pop()
    pop.fit(TrainData(beauty.items.size, beauty.sequences))
    items = model_items(pop, beauty.items.ids)
    by_popularity = np.argsort(-items.popularity, kind="stable")
    history = np.tile(by_popularity[:300], 2)  # 600 events over the 300 most popular items, oldest first
    ranker = Ranker(ModelScorer(pop))
    ranked = ranker.rank([Request(history, k=10)], items)[0]
    assert not set(ranked.items.tolist()) & set(history.tolist())
    assert ranked.items.tolist() == by_popularity[300:310].tolist()
    again = ranker.rank([Request(history, k=10, exclude_seen=False)], items)[0]
    assert again.items.tolist() == by_popularity[:10].tolist()
    assert not ranked.personal  # popularity ranks every history alike


def test_a_price_bound_on_a_catalog_without_prices_is_said_not_applied(itemknn: ItemKNN, beauty: Dataset) -> None:
    unpriced = model_items(itemknn, beauty.items.ids)
    request = Request(np.zeros(0, dtype=np.int64), k=5, max_price=20.0)
    ranker = Ranker(ModelScorer(itemknn), filters=(Price(),))
    answer = ranker.rank([request], unpriced)[0]
    assert len(answer.items) == 5 and answer.notes == ("no item here has a price, so the price bound was not applied",)
    # With prices, the bound holds and nothing is said: only items 1..3 are priced, and only 1 and 3 are cheap.
    records = [
        None,
        *(CatalogItem(item_id=i, price=p) for i, p in zip(beauty.items.ids[:3], (5.0, 25.0, 19.5), strict=True)),
    ]
    records += [None] * (beauty.items.size - len(records))
    priced = index_items(("", *beauty.items.ids), records, table=None, popularity=unpriced.popularity)
    bounded = ranker.rank([request], priced)[0]
    assert sorted(bounded.items.tolist()) == [1, 3] and bounded.notes == ()
    nothing = ranker.rank([Request(request.history, k=5, max_price=1.0)], priced)[0]
    assert nothing.items.tolist() == [] and nothing.notes == ("no item priced up to 1 meets the rest of the request",)


def test_occlusion_is_the_hand_computed_score_drop(itemknn: ItemKNN, beauty: Dataset) -> None:
    items = model_items(itemknn, beauty.items.ids)
    history = beauty.sequences.row(int(np.flatnonzero(beauty.sequences.lengths() >= 8)[0]))
    target = int(rank(itemknn, Sequences.from_lists([0], [history]), 1)[0, 0])
    explained = occlusion(ModelScorer(itemknn), Request(history, k=10), items, target, window=None)

    def hand_score(h: np.ndarray) -> float:
        return float(itemknn.score(Sequences.from_lists([0], [h]))[0, target])

    assert explained.score == pytest.approx(hand_score(history))
    distinct = list(dict.fromkeys(history[::-1].tolist()))
    drops = {item: hand_score(history) - hand_score(history[history != item]) for item in distinct}
    positive = sum(d for d in drops.values() if d > 0)
    assert {r.item for r in explained.reasons} == {item for item, d in drops.items() if d != 0}
    for reason in explained.reasons:
        assert reason.share == pytest.approx(drops[reason.item] / positive)


def test_mmr_at_zero_keeps_the_order_and_above_zero_diversifies(
    itemknn: ItemKNN, beauty: Dataset, beauty_item_vectors: np.ndarray
) -> None:
    """ItemKNN has no item vectors, so MMR measures similarity in the text space."""
    items = model_items(itemknn, beauty.items.ids, search=beauty_item_vectors)
    rows = np.flatnonzero(beauty.sequences.lengths() >= 5)[:50]
    requests = [Request(beauty.sequences.row(int(r)), k=10) for r in rows]
    plain = Ranker(ModelScorer(itemknn)).rank(requests, items)
    same = Ranker(ModelScorer(itemknn), rerankers=(MMR(0.0),)).rank(requests, items)
    varied = Ranker(ModelScorer(itemknn), rerankers=(MMR(0.5),)).rank(requests, items)

    def mean_similarity(lists: list[Ranked]) -> float:
        pairs = [beauty_item_vectors[r.items] @ beauty_item_vectors[r.items].T for r in lists]
        return float(np.mean([(p.sum() - np.trace(p)) / (len(p) * (len(p) - 1)) for p in pairs]))

    assert [r.items.tolist() for r in same] == [r.items.tolist() for r in plain]
    assert mean_similarity(varied) < mean_similarity(plain) - 0.05
    for request, before, after in zip(requests, plain, varied, strict=True):
        assert after.items[0] == before.items[0]  # the most relevant item still leads
        assert len(after.items) == 10 and not set(after.items.tolist()) & set(request.history.tolist())
    with pytest.raises(ValueError, match="diversity"):
        MMR(1.5)


def test_a_text_query_never_returns_an_item_without_text(itemknn: ItemKNN, beauty: Dataset) -> None:
    search = np.zeros((beauty.items.size, 4), dtype=np.float32)
    search[1:6, 0] = 1.0  # only items 1..5 have text
    items = model_items(itemknn, beauty.items.ids, search=search)
    ranker = Ranker(TextRelevance(lambda _query: np.array([1.0, 0, 0, 0], dtype=np.float32)), TextMatches(), ())
    worded = ranker.rank([Request(np.zeros(0, dtype=np.int64), k=10, query="words")], items)[0]
    assert sorted(worded.items.tolist()) == [1, 2, 3, 4, 5]
    constraints_only = ranker.rank([Request(np.zeros(0, dtype=np.int64), k=10, query="")], items)[0]
    assert len(constraints_only.items) == 10


def test_search_without_a_model_ranks_anonymous_queries_as_the_served_search(
    itemknn: ItemKNN, beauty: Dataset, beauty_item_vectors: np.ndarray
) -> None:
    """What docs/llm.md measures search with (no trained model) is what serving answers an anonymous query with."""
    items = model_items(itemknn, beauty.items.ids, search=beauty_item_vectors)

    def encode(text: str) -> np.ndarray:  # the query "7" reads like item 7's text
        return beauty_item_vectors[int(text)]

    anonymous = [Request(np.zeros(0, dtype=np.int64), k=10, exclude_seen=False, query=str(i)) for i in (7, 70, 700)]
    served = rankers_for(itemknn, encode).search.rank(anonymous, items)
    free = search_ranker(encode).rank(anonymous, items)
    for one, other in zip(served, free, strict=True):
        assert one.items.tolist() == other.items.tolist() and one.reasons == other.reasons
        np.testing.assert_allclose(one.scores, other.scores)
    history = beauty.sequences.row(int(np.flatnonzero(beauty.sequences.lengths() >= 8)[0]))
    known = Request(history, k=10, exclude_seen=False, query="7")
    assert rankers_for(itemknn, encode).search.rank([known], items)[0].personal  # only a history tells them apart
    assert not search_ranker(encode).rank([known], items)[0].personal


def test_brand_and_category_exclusions_hold_and_an_unbranded_catalog_says_so(beauty: Dataset) -> None:
    pop = Pop()
    pop.fit(TrainData(beauty.items.size, beauty.sequences))
    unbranded = model_items(pop, beauty.items.ids, records=catalog_records(beauty, beauty.items.ids))
    ranker = Ranker(ModelScorer(pop), filters=(Category(), Brand()))
    anyone = np.zeros(0, dtype=np.int64)
    request = Request(anyone, k=50, categories=("Makeup",), exclude_categories=("Nails",), exclude_brands=("OPI",))
    answer = ranker.rank([request], unbranded)[0]
    assert len(answer.items) == 50 and answer.notes == (BRAND_NOT_APPLIED,)  # Beauty has no brand field
    assert unbranded.in_categories(["Makeup"])[answer.items].all()
    assert not unbranded.in_categories(["Nails"])[answer.items].any()
    # Brands on three items: asked-for and ruled-out brands hold, any case.
    records: list[CatalogItem | None] = [None, *(CatalogItem(item_id=i) for i in beauty.items.ids)]
    for index, brand in ((1, "OPI"), (2, "Essie"), (3, "opi")):
        records[index] = CatalogItem(item_id=beauty.items.ids[index - 1], brand=brand)
    branded = index_items(("", *beauty.items.ids), records, table=None, popularity=unbranded.popularity)
    wanted = ranker.rank([Request(anyone, k=10, brands=("opi",))], branded)[0]
    assert sorted(wanted.items.tolist()) == [1, 3] and wanted.notes == ()
    others = ranker.rank([Request(anyone, k=branded.n_trained, exclude_brands=("OPI",))], branded)[0]
    assert {1, 3}.isdisjoint(others.items.tolist()) and 2 in others.items.tolist()
