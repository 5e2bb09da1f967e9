"""The serving pipeline on a real Beauty slice: what a shop relies on from the feed, similar items, search,
explanations and ingest, with a trained fused SASRec and the real encoders."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from shoprec.data.dataset import Dataset, levels
from shoprec.serving.pipeline import FeedRequest, Pipeline
from shoprec.serving.schemas import EventIn, ItemIn, Recommended
from shoprec.serving.seed import seed_store
from shoprec.storage.store import CatalogItem, Store
from shoprec.types import EventType

NEW = "NEW-ITEM"


def same(raw: str) -> str:
    """Events in these tests name users by their stored pseudonym already."""
    return raw


def user_of(data: Dataset, min_items: int) -> str:
    """The first user (a stored pseudonym) with at least ``min_items`` interactions."""
    row = int(np.flatnonzero(data.sequences.lengths() >= min_items)[0])
    return data.users.id_of(int(data.sequences.users[row]))


def in_category(item: Recommended, name: str) -> bool:
    return name.lower() in {level.lower() for level in levels(item.category)}


def as_input(item: CatalogItem, **changes: object) -> ItemIn:
    return ItemIn.model_validate({**asdict(item), "tags": list(item.tags), **changes})


def mascaras(pipeline: Pipeline) -> list[CatalogItem]:
    return [item for item in pipeline.store.items() if "Mascara" in levels(item.category)]


def view(user: str, item_id: str) -> EventIn:
    return EventIn(user_id=user, item_id=item_id, type=EventType.VIEW)


def test_feed_is_k_distinct_unseen_items_best_first_with_reasons(pipeline: Pipeline, serving_data: Dataset) -> None:
    user = user_of(serving_data, 5)
    seen = {event.item_id for event in pipeline.store.history(user)}
    feed = pipeline.recommend(user, "raw-id", k=10)
    ids = [item.item_id for item in feed.items]
    assert (feed.user_id, feed.cold_start) == ("raw-id", False)
    assert feed.model_version.startswith("sasrec-")
    assert len(set(ids)) == 10
    assert not seen & set(ids)
    scores = [item.score for item in feed.items]
    assert scores == sorted(scores, reverse=True)
    for item in feed.items:
        assert item.title
        assert sum(reason.contribution for reason in item.reasons) == pytest.approx(1.0)
        assert {reason.kind for reason in item.reasons} == {"history"}
        assert {reason.item_id for reason in item.reasons} <= seen | {None}


def test_viewing_a_new_category_raises_its_share_of_the_feed(pipeline: Pipeline, serving_data: Dataset) -> None:
    user = user_of(serving_data, 5)
    touched = [pipeline.store.get_item(event.item_id) for event in pipeline.store.history(user)]
    assert not any("Mascara" in levels(item.category) for item in touched if item is not None)

    def share() -> float:
        feed = pipeline.recommend(user, user, k=20)
        return sum(in_category(item, "Mascara") for item in feed.items) / len(feed.items)

    before = share()
    accepted = pipeline.ingest([(i, view(user, item.item_id)) for i, item in enumerate(mascaras(pipeline)[:3])], same)
    assert accepted.stored == 3
    assert share() >= before + 0.2


def test_an_unknown_user_gets_the_popular_items(pipeline: Pipeline) -> None:
    feed = pipeline.recommend("nobody", "nobody", k=5)
    assert feed.cold_start
    assert [reason.kind for item in feed.items for reason in item.reasons] == ["popular"] * 5
    popularity = pipeline.catalog.snapshot().popularity
    assert [item.score for item in feed.items] == sorted(popularity, reverse=True)[:5]


def test_feeds_computed_together_equal_feeds_computed_one_by_one(pipeline: Pipeline, serving_data: Dataset) -> None:
    """The micro-batched path (one model call for many users) answers exactly as single requests do."""
    users = [serving_data.users.id_of(int(u)) for u in serving_data.sequences.users[:6]]
    requests = [
        FeedRequest(users[0], "a", 10),
        FeedRequest(users[1], "b", 5, category="Makeup"),
        FeedRequest("nobody", "c", 5),  # cold start, between two users with histories
        FeedRequest(users[2], "d", 7, exclude_seen=False),
        *(FeedRequest(user, user, 10) for user in users[3:]),
        FeedRequest(users[0], "a", 10),  # the same user twice in one batch
    ]
    together = pipeline.recommend_many(requests)
    alone = [pipeline.recommend_many([request])[0] for request in requests]
    for batched, single in zip(together, alone, strict=True):
        assert [item.item_id for item in batched.items] == [item.item_id for item in single.items]
        assert [item.reasons for item in batched.items] == [item.reasons for item in single.items]
        np.testing.assert_allclose([i.score for i in batched.items], [i.score for i in single.items], rtol=1e-5)
        assert (batched.user_id, batched.cold_start) == (single.user_id, single.cold_start)
    assert [feed.cold_start for feed in together].count(True) == 1


def test_category_filter_holds_at_any_level_in_any_case(pipeline: Pipeline, serving_data: Dataset) -> None:
    user = user_of(serving_data, 5)
    for category in ("hair care", "Mascara", "Makeup"):
        feed = pipeline.recommend(user, user, k=8, category=category)
        assert len(feed.items) == 8
        assert all(in_category(item, category) for item in feed.items)
    assert pipeline.recommend(user, user, k=8, category="Hair").items == []  # a whole level, not a prefix


def test_a_new_item_is_similar_searchable_and_recommendable(pipeline: Pipeline) -> None:
    *viewed, twin = mascaras(pipeline)[:4]
    accepted = pipeline.upsert_items([as_input(twin, item_id=NEW)])
    assert (accepted.stored, accepted.new) == (1, 1)
    assert pipeline.n_items() == len(pipeline.store.items())

    similar = pipeline.similar(twin.item_id, k=3)
    assert similar.items[0].item_id == NEW
    assert similar.items[0].reasons[0].kind == "similar"
    assert NEW in [item.item_id for item in pipeline.search(twin.title or "", k=3).items]

    pipeline.ingest([(i, view("fan", item.item_id)) for i, item in enumerate(viewed)], same)
    assert NEW in [item.item_id for item in pipeline.recommend("fan", "fan", k=20).items]


def test_an_item_added_through_another_server_process_is_served_here_at_once(
    pipeline: Pipeline, model_dir: Path, seeded_store_url: str, cache_dir: Path
) -> None:
    """Two pipelines on one store stand for two `serve --workers 2` processes: what one adds, the other serves at
    its very next request (and updates as well as additions)."""
    other_store = Store(seeded_store_url)
    try:
        other = Pipeline.load(model_dir, other_store, cache_dir=cache_dir)
        twin = mascaras(pipeline)[0]
        other.upsert_items([as_input(twin, item_id=NEW, price=12.0)])
        assert pipeline.similar(twin.item_id, k=1).items[0].item_id == NEW
        other.upsert_items([as_input(twin, item_id=NEW, price=3.0)])
        assert pipeline.search(f"{twin.title} under $5", k=1).items[0].item_id == NEW
        assert pipeline.n_items() == other.n_items() == len(pipeline.store.items())
    finally:
        other_store.close()


def test_an_item_the_model_knows_keeps_its_vector_when_updated(pipeline: Pipeline) -> None:
    item = pipeline.store.items()[0]
    index = pipeline.catalog.snapshot().index(item.item_id)
    row = pipeline.catalog.snapshot().table[index].copy()
    accepted = pipeline.upsert_items([as_input(item, price=9.5)])
    assert (accepted.stored, accepted.new) == (1, 0)
    assert pipeline.catalog.snapshot().index(item.item_id) == index
    np.testing.assert_array_equal(pipeline.catalog.snapshot().table[index], row)
    assert pipeline.catalog.snapshot().price(index) == 9.5


def test_search_keeps_to_price_bounds_and_category_words(pipeline: Pipeline) -> None:
    polish = [item for item in pipeline.store.items() if (item.category or "").endswith("Nail Polish")]
    prices = [5.0, 12.0, 19.0, 25.0, 40.0]
    pipeline.upsert_items([as_input(item, price=price) for item, price in zip(polish, prices, strict=False)])

    cheap = pipeline.search("nail polish under $20", k=10)
    assert (cheap.parsed.max_price, cheap.parsed.categories) == (20, ["Nail Polish"])
    assert {item.item_id for item in cheap.items} == {item.item_id for item in polish[:3]}
    for item in cheap.items:
        assert item.price is not None and item.price <= 20
        assert [reason.kind for reason in item.reasons][-2:] == ["attribute", "attribute"]

    mascara = pipeline.search("waterproof mascara", k=5)
    assert mascara.parsed.categories == ["Mascara"]
    assert len(mascara.items) == 5
    assert all(in_category(item, "Mascara") for item in mascara.items)
    assert "mascara" in {reason.detail for reason in mascara.items[0].reasons}


def test_a_constraint_only_query_ranks_by_popularity(pipeline: Pipeline) -> None:
    results = pipeline.search("shampoos", k=5)  # a category name is a filter as well as text
    assert results.parsed.categories == ["Shampoos"] and all(in_category(i, "Shampoos") for i in results.items)
    # A price bound alone leaves no text: popularity ranks. The slice has no prices, so the bound is not applied
    # and the answer says so instead of coming back empty.
    priced = pipeline.search("over $0", k=5)
    assert (priced.parsed.text, priced.parsed.min_price) == ("", 0)
    assert priced.notes == ["no item here has a price, so the price bound was not applied"]
    items = pipeline.catalog.snapshot()
    real = np.arange(1, len(items))
    by_popularity = real[np.lexsort((real, -items.popularity[real]))]  # ties: the lower index first
    assert [item.item_id for item in priced.items] == [items.ids[i] for i in by_popularity[:5]]


def test_a_chinese_query_finds_english_titles(pipeline: Pipeline) -> None:
    results = pipeline.search("指甲油", k=10)
    assert results.parsed.text == "指甲油"
    polish = [item for item in results.items if in_category(item, "Nails")]
    assert len(polish) >= 3
    assert polish[0].reasons[0].detail == "指甲油"  # no word of the query is in the title: the query as a whole


def test_personalised_search_and_similar_blend_in_the_feed(pipeline: Pipeline, serving_data: Dataset) -> None:
    user = user_of(serving_data, 5)
    results = pipeline.search("conditioner", k=5, user_id=user)
    assert results.personalised
    assert not pipeline.search("conditioner", k=5).personalised
    for item in results.items:
        assert sum(reason.contribution for reason in item.reasons) == pytest.approx(1.0)
    seed = pipeline.store.items()[0].item_id
    similar = pipeline.similar(seed, k=5, user_id=user)
    assert seed not in [item.item_id for item in similar.items]
    assert any(reason.kind == "history" for item in similar.items for reason in item.reasons)


def test_explanations_add_up_and_agree_with_the_feed(pipeline: Pipeline, serving_data: Dataset) -> None:
    user = user_of(serving_data, 5)
    feed = pipeline.recommend(user, user, k=5)
    for position, item in enumerate(feed.items, start=1):
        explanation = pipeline.explain(user, "raw", item.item_id)
        assert (explanation.user_id, explanation.rank) == ("raw", position)
        assert explanation.score == pytest.approx(item.score, rel=1e-5)
        assert explanation.method.startswith("occlusion")
        positive = [reason.contribution for reason in explanation.reasons if reason.contribution > 0]
        assert sum(positive) == pytest.approx(1.0)
    seen = pipeline.store.history(user)[-1].item_id
    assert pipeline.explain(user, user, seen).rank is None
    stranger = pipeline.explain("nobody", "nobody", feed.items[0].item_id)
    assert [reason.kind for reason in stranger.reasons] == ["popular"]
    assert stranger.rank is not None and stranger.rank >= 1


def test_readers_see_whole_snapshots_while_items_are_added(pipeline: Pipeline, serving_data: Dataset) -> None:
    user = user_of(serving_data, 5)
    template = pipeline.store.items()[0]
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(30):
                pipeline.recommend(user, user, k=5)
                pipeline.similar(template.item_id, k=5)
        except BaseException as error:  # re-raised below, in the test's own thread
            errors.append(error)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    for n in range(10):
        pipeline.upsert_items([as_input(template, item_id=f"{NEW}-{n}")])
    for thread in readers:
        thread.join()
    assert errors == []
    index = pipeline.catalog.snapshot()
    assert len(index.ids) == len(index.table) == len(index.search) == len(index.prices) == serving_data.items.size + 10


def test_unknown_items_are_key_errors(pipeline: Pipeline) -> None:
    with pytest.raises(KeyError):
        pipeline.similar("no-such-item", k=5)
    with pytest.raises(KeyError):
        pipeline.explain("nobody", "nobody", "no-such-item")


def test_ingest_stores_known_items_and_reports_the_rest_by_position(pipeline: Pipeline) -> None:
    known = [item.item_id for item in pipeline.store.items()[:2]]
    before = pipeline.store.count_events()
    started = time.time()
    events = [
        (0, view("shopper", known[0])),
        (1, view("shopper", "no-such-item")),
        (2, EventIn(user_id="shopper", item_id=known[1], type=EventType.CART, timestamp=123.0)),
    ]
    accepted = pipeline.ingest(events, lambda raw: f"pseudo-{raw}")
    assert accepted.stored == 2
    assert [(error.index, error.field) for error in accepted.rejected] == [(1, "item_id")]
    assert "no-such-item" in accepted.rejected[0].message
    assert pipeline.store.count_events() == before + 2
    history = pipeline.store.history("pseudo-shopper")
    # in event-time order: the cart stamped 123 s after the epoch came long before the view stamped on receipt
    assert [(event.item_id, event.type) for event in history] == [(known[1], "cart"), (known[0], "view")]
    assert history[0].timestamp == 123.0
    assert history[1].timestamp is not None and history[1].timestamp >= started


def test_seeding_copies_the_dataset_once(serving_data: Dataset, seeded_store_url: str, tmp_path: Path) -> None:
    store = Store(seeded_store_url)
    counts = (store.count_items(), store.count_events())
    assert counts == (serving_data.n_items, serving_data.sequences.n_interactions)
    assert seed_store(store, serving_data) == (0, 0)
    assert (store.count_items(), store.count_events()) == counts
    row = 3
    user = serving_data.users.id_of(int(serving_data.sequences.users[row]))
    expected = serving_data.items.ids_of(serving_data.sequences.row(row))
    assert [event.item_id for event in store.history(user)] == expected
    first = store.get_item(expected[0])
    assert first is not None and first.title == serving_data.title(int(serving_data.sequences.row(row)[0]))
    store.close()


def test_vocabulary_items_without_metadata_are_still_served(model_dir: Path, cache_dir: Path, tmp_path: Path) -> None:
    empty = Store(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    pipeline = Pipeline.load(model_dir, empty, cache_dir=cache_dir)
    feed = pipeline.recommend("nobody", "nobody", k=3)
    assert len(feed.items) == 3
    assert all(item.title is None for item in feed.items)
    empty.close()
