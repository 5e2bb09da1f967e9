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
from shoprec.models.sasrec import SASRec
from shoprec.serving.pipeline import FeedRequest, Pipeline
from shoprec.storage.store import Store
from shoprec.types import Sequences

USERS = 40
K = 10


@pytest.mark.parametrize("name", ["sasrec", "itemknn"])
def test_the_served_feed_is_the_offline_ranking(
    name: str,
    model_dir: Path,
    classic_dir: Callable[[str], Path],
    store: Store,
    cache_dir: Path,
    serving_data: Dataset,
) -> None:
    directory = model_dir if name == "sasrec" else classic_dir(name)
    pipeline = Pipeline.load(directory, store, search_encoder="hashing", cache_dir=cache_dir)
    model, vocabulary, _ = load_artifact(directory)
    users = [serving_data.users.id_of(int(u)) for u in serving_data.sequences.users[:USERS]]
    histories = [vocabulary.lookup([event.item_id for event in store.history(user)]) for user in users]
    offline = rank(model, Sequences.from_lists(np.arange(USERS), histories), K)
    served = pipeline.recommend_many([FeedRequest(user, user, K) for user in users])
    for row, feed in zip(offline, served, strict=True):
        assert [item.item_id for item in feed.items] == vocabulary.ids_of(row)
        assert not feed.cold_start


def test_the_served_item_table_is_the_trained_one(
    trained_sasrec: SASRec, model_dir: Path, store: Store, cache_dir: Path
) -> None:
    """The model in memory right after training, against the table a server builds from its saved directory."""
    model = trained_sasrec
    pipeline = Pipeline.load(model_dir, store, search_encoder="hashing", cache_dir=cache_dir)
    served = pipeline.catalog.snapshot().table
    assert served is not None
    np.testing.assert_array_equal(served[: model.n_items], model.item_table())
