"""The shop's consent policy and retention period as the serving pipeline and the running app apply them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from threadpoolctl import threadpool_limits

from shoprec.data.dataset import Dataset
from shoprec.privacy.consent import ConsentPolicy
from shoprec.privacy.erasure import (
    FORGOTTEN,
    erasure_tag,
    flag_models,
    forgotten_since_training,
    write_trained_users,
)
from shoprec.serving.app import create_app
from shoprec.serving.pipeline import Pipeline
from shoprec.serving.schemas import EventIn
from shoprec.serving.settings import ServingSettings
from shoprec.storage.store import Store, StoredEvent
from shoprec.types import EventType


def user_of(data: Dataset, min_items: int) -> str:
    row = int(np.flatnonzero(data.sequences.lengths() >= min_items)[0])
    return data.users.id_of(int(data.sequences.users[row]))


@pytest.fixture
def opt_in(model_dir: Path, seeded_store_url: str, cache_dir: Path) -> Iterator[Pipeline]:
    """A pipeline whose shop personalises only users who said yes, and keeps the others' events."""
    store = Store(seeded_store_url, consent=ConsentPolicy(required=True, keep_events_without_consent=True))
    threads = torch.get_num_threads()
    with threadpool_limits(limits=None):
        yield Pipeline.load(model_dir, store, cache_dir=cache_dir)
    torch.set_num_threads(threads)
    store.close()


def test_opt_in_personalises_only_after_a_yes_and_can_keep_the_others_events(
    opt_in: Pipeline, serving_data: Dataset
) -> None:
    user = user_of(serving_data, 5)
    anonymous = opt_in.recommend("never-seen", "never-seen", 10)
    unasked = opt_in.recommend(user, "raw", 10)
    assert unasked.cold_start and unasked.items == anonymous.items
    before = opt_in.store.count_events()
    event = EventIn(user_id=user, item_id=serving_data.items.id_of(1), type=EventType.VIEW)
    accepted = opt_in.ingest([(0, event)], lambda raw: raw)
    assert (accepted.stored, accepted.withheld) == (1, 0) and opt_in.store.count_events() == before + 1
    assert opt_in.recommend(user, "raw", 10).cold_start
    opt_in.store.set_consent(user, True)
    assert not opt_in.recommend(user, "raw", 10).cold_start


def test_the_running_app_purges_what_the_retention_period_ended(
    model_dir: Path, seeded_store_url: str, cache_dir: Path
) -> None:
    store = Store(seeded_store_url)
    now = time.time()
    store.add_events(
        [
            StoredEvent("p" * 32, "old", EventType.VIEW, now - 31 * 86_400),
            StoredEvent("p" * 32, "recent", EventType.VIEW, now - 29 * 86_400),
        ]
    )
    stored = store.count_events()
    store.close()
    settings = ServingSettings(
        model_dir=model_dir, database_url=seeded_store_url, cache_dir=cache_dir, retention_days=30
    )
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 30
        while client.get("/health").json()["events"] == stored and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/health").json()["events"] == stored - 1  # seeded events have no time: they came just now
    store = Store(seeded_store_url)
    assert store.recent_items("p" * 32, None) == ["recent"]
    store.close()


def test_forgetting_flags_only_the_models_trained_on_the_user(tmp_path: Path) -> None:
    trained_on, other = tmp_path / "a", tmp_path / "nested" / "b"
    for directory, users in ((trained_on, ["u1", "u2"]), (other, ["u3"])):
        directory.mkdir(parents=True)
        write_trained_users(directory, users)
    assert flag_models([tmp_path], [erasure_tag("u1")]) == [trained_on]
    assert flag_models([tmp_path], [erasure_tag("u2"), erasure_tag("u9")]) == [trained_on]
    assert sorted(forgotten_since_training(trained_on)) == sorted([erasure_tag("u1"), erasure_tag("u2")])
    assert forgotten_since_training(other) == [] and not (other / FORGOTTEN).exists()
    assert "u1" not in (trained_on / FORGOTTEN).read_text() and json.loads((trained_on / FORGOTTEN).read_text())
    write_trained_users(trained_on, ["u2"])  # retrained: the flags named the old model
    assert forgotten_since_training(trained_on) == []
