"""Served equals measured: the feed the API answers is the ranking the evaluation protocol computes for the same
model on the same history, and the served item table is the trained one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from shoprec.data.dataset import Dataset
from shoprec.evaluation.protocol import rank
from shoprec.models.artifact import load_artifact
from shoprec.models.base import Recommender
from shoprec.models.sasrec import SASRec
from shoprec.ranking.recommend import OfflineRanking, Ranker
from shoprec.ranking.rerank import MMR, TAIL_SHORT, Calibration, ExposureFloors, ProviderExposure, TailExposure
from shoprec.ranking.stages import PopularityCorrection, model_scorer
from shoprec.ranking.types import Knobs
from shoprec.serving.pipeline import FeedRequest, Pipeline
from shoprec.storage.store import Store, StoredEvent
from shoprec.types import EventType, Sequences, Vocabulary

USERS = 40
K = 10


Served = tuple[Pipeline, Recommender, Vocabulary, list[str], Sequences]


@pytest.fixture
def served_for(
    model_dir: Path, classic_dir: Callable[[str], Path], store: Store, cache_dir: Path, serving_data: Dataset
) -> Callable[[str], Served]:
    """A pipeline over model ``name`` ("sasrec": the fused Transformer), the model as saved, its vocabulary, the
    first USERS seeded users and their stored histories as the model's item indices."""

    def load(name: str) -> Served:
        directory = model_dir if name == "sasrec" else classic_dir(name)
        pipeline = Pipeline.load(directory, store, search_encoder="hashing", cache_dir=cache_dir)
        model, vocabulary, _ = load_artifact(directory)
        users = [serving_data.users.id_of(int(u)) for u in serving_data.sequences.users[:USERS]]
        histories = [vocabulary.lookup([event.item_id for event in store.history(user)]) for user in users]
        return pipeline, model, vocabulary, users, Sequences.from_lists(np.arange(USERS), histories)

    return load


@pytest.mark.parametrize("name", ["sasrec", "itemknn"])
def test_the_served_feed_is_the_offline_ranking(name: str, served_for: Callable[[str], Served]) -> None:
    pipeline, model, vocabulary, users, histories = served_for(name)
    offline = rank(model, histories, K)
    served = pipeline.recommend_many([FeedRequest(user, user, K) for user in users])
    for row, feed in zip(offline, served, strict=True):
        assert [item.item_id for item in feed.items] == vocabulary.ids_of(row)
        assert not feed.cold_start


KNOBS: dict[str, tuple[Knobs, Callable[[Recommender], Ranker]]] = {
    "diversity": (Knobs(diversity=0.5), lambda m: Ranker(model_scorer(m), rerankers=(MMR(0.5),))),
    "calibration": (Knobs(calibration=0.5), lambda m: Ranker(model_scorer(m), rerankers=(Calibration(0.5),))),
    "tail_share": (Knobs(tail_share=0.5), lambda m: Ranker(model_scorer(m), rerankers=(TailExposure(0.5),))),
    "provider_share": (
        Knobs(provider_share=0.5),
        lambda m: Ranker(model_scorer(m), rerankers=(ProviderExposure(0.5),)),
    ),
    "popularity_correction": (
        Knobs(popularity_correction=0.5),
        lambda m: Ranker(PopularityCorrection(model_scorer(m), 0.5)),
    ),
    "all that combine": (
        Knobs(diversity=0.5, tail_share=0.3, provider_share=0.2, popularity_correction=0.3),
        lambda m: Ranker(
            PopularityCorrection(model_scorer(m), 0.3),
            rerankers=(MMR(0.5), ExposureFloors((ProviderExposure(0.2), TailExposure(0.3)))),
        ),
    ),
}


@pytest.mark.parametrize(
    ("name", "knob"),
    [
        ("sasrec", "diversity"),
        ("itemknn", "diversity"),
        ("sasrec", "calibration"),
        ("sasrec", "tail_share"),
        ("sasrec", "provider_share"),
        ("sasrec", "popularity_correction"),
        ("sasrec", "all that combine"),
    ],
)
def test_a_re_ranked_feed_is_the_offline_ranking_with_the_same_stages(
    name: str, knob: str, served_for: Callable[[str], Served]
) -> None:
    """``?diversity=0.5`` (and each other knob, and knobs together) serves what the evaluation protocol ranks with
    the same stages built by hand over the same items, and it changes most lists. MMR works in the search text
    space where every item has text, else in the model's item space."""
    pipeline, model, vocabulary, users, histories = served_for(name)
    knobs, ranker = KNOBS[knob]
    offline = rank(OfflineRanking(ranker(model), pipeline.catalog.snapshot()), histories, K)
    served = pipeline.recommend_many([FeedRequest(user, user, K, knobs=knobs) for user in users])
    plain = pipeline.recommend_many([FeedRequest(user, user, K) for user in users])
    for row, feed in zip(offline, served, strict=True):
        assert [item.item_id for item in feed.items] == vocabulary.ids_of(row)
    changed = sum(a.items != b.items for a, b in zip(served, plain, strict=True))
    assert changed > USERS // 2


def test_a_feed_says_when_its_candidates_cannot_meet_the_tail_floor(served_for: Callable[[str], Served]) -> None:
    """``?tail_share=1``: a feed carries the note exactly when its list is not all long-tail items; asked for more
    items than the catalogue's tail holds, every feed does; without the knob, none."""
    pipeline, _, _, users, _ = served_for("sasrec")
    items = pipeline.catalog.snapshot()

    def floors(k: int) -> tuple[list[bool], list[bool]]:
        feeds = pipeline.recommend_many([FeedRequest(user, user, k, knobs=Knobs(tail_share=1.0)) for user in users])
        short = [sum(bool(items.tail[items.index(i.item_id)]) for i in feed.items) < k for feed in feeds]
        return [TAIL_SHORT in feed.notes for feed in feeds], short

    noted, short = floors(K)
    assert noted == short
    noted, short = floors(int(items.tail.sum()) + 5)
    assert all(noted) and all(short)
    assert not any(feed.notes for feed in pipeline.recommend_many([FeedRequest(u, u, K) for u in users]))


def test_the_served_item_table_is_the_trained_one(
    trained_sasrec: SASRec, model_dir: Path, store: Store, cache_dir: Path
) -> None:
    """The model in memory right after training, against the table a server builds from its saved directory."""
    model = trained_sasrec
    pipeline = Pipeline.load(model_dir, store, search_encoder="hashing", cache_dir=cache_dir)
    served = pipeline.catalog.snapshot().table
    assert served is not None
    np.testing.assert_array_equal(served[: model.n_items], model.item_table())


def test_an_explanation_covers_every_history_item_the_model_reads(
    model_dir: Path, store: Store, cache_dir: Path, serving_data: Dataset
) -> None:
    """A history longer than the Transformer's window (max_len 20): each distinct item among the last 20 that moves
    the score is a reason, with its hand-computed share; nothing older is."""
    pipeline = Pipeline.load(model_dir, store, search_encoder="hashing", cache_dir=cache_dir)
    model, vocabulary, _ = load_artifact(model_dir)
    assert model.history_window == 20
    items = list(vocabulary.ids[:40])
    store.add_events([StoredEvent("long-history", item, EventType.VIEW, 1_000.0 + t) for t, item in enumerate(items)])
    history = vocabulary.lookup(items)
    target = pipeline.recommend("long-history", "raw", k=1).items[0].item_id
    explained = pipeline.explain("long-history", "raw", target)
    column = vocabulary.index(target)

    def hand_score(h: np.ndarray) -> float:
        return float(model.score(Sequences.from_lists([0], [h]))[0, column])

    drops = {vocabulary.id_of(int(i)): hand_score(history) - hand_score(history[history != i]) for i in history[-20:]}
    positive = sum(drop for drop in drops.values() if drop > 0)
    assert {reason.item_id for reason in explained.reasons} == {item for item, drop in drops.items() if drop != 0}
    assert len(explained.reasons) >= 15  # the whole window, not a few recent items
    for reason in explained.reasons:
        assert reason.item_id is not None
        assert reason.contribution == pytest.approx(drops[reason.item_id] / positive, rel=1e-4, abs=1e-6)
