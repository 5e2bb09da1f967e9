"""The event and catalog store: one suite, run on SQLite and on the local PostgreSQL server.

The PostgreSQL cases fail (not skip) when the server is unreachable: CI has one, and a silent skip would hide a broken
backend. Each PostgreSQL case works in a fresh schema that is dropped afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shoprec.storage.store import CatalogItem, Store, StoredEvent
from shoprec.types import EventType

POSTGRES_URL = os.environ.get("SHOPREC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

OpenStore = Callable[[], Store]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens Stores on one fresh database (every call sees the same data), closes them all, and cleans up."""
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path / 'serve' / 'shoprec.sqlite3'}", None
    else:
        url, schema = POSTGRES_URL, f"test_{uuid.uuid4().hex}"
    opened: list[Store] = []

    def open_() -> Store:
        opened.append(Store(url, schema=schema))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()
    if schema is not None and opened:  # a Store that failed to open rolled its schema back
        _drop_schema(schema)


def _drop_schema(schema: str) -> None:
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    return open_store()


def events(user: str, n: int, start: int = 0) -> list[StoredEvent]:
    kinds = list(EventType)
    return [StoredEvent(user, f"item{i}", kinds[i % len(kinds)], 1.7e9 + i) for i in range(start, start + n)]


def test_history_is_per_user_in_arrival_order(store: Store) -> None:
    alice, bob = events("alice", 5), events("bob", 3)
    interleaved = [e for pair in zip(alice, bob, strict=False) for e in pair] + alice[3:]
    assert store.add_events(interleaved) == 8
    store.add_events([StoredEvent("alice", "late", EventType.PURCHASE)])  # no timestamp: only the order is known

    assert store.history("alice") == [*alice, StoredEvent("alice", "late", EventType.PURCHASE, None)]
    assert store.history("bob") == bob
    assert store.history("nobody") == []
    assert store.count_events() == 9
    assert store.add_events([]) == 0


def test_recent_items_are_the_latest_events_items_oldest_first(store: Store) -> None:
    store.add_events(events("alice", 10))
    store.add_events(events("bob", 10))
    store.add_events(events("alice", 5, start=10))

    def items(evs: list[StoredEvent]) -> list[str]:
        return [event.item_id for event in evs]

    assert store.recent_items("alice", 3) == items(events("alice", 3, start=12))
    assert store.recent_items("alice", 100) == items(events("alice", 15))
    assert store.recent_items("alice", 0) == []
    assert store.recent_items("nobody", 5) == []


def test_forget_user_deletes_only_that_user(store: Store) -> None:
    store.add_events(events("alice", 4) + events("bob", 2))
    assert store.forget_user("alice") == 4
    assert store.history("alice") == []
    assert store.history("bob") == events("bob", 2)
    assert store.count_events() == 2
    assert store.forget_user("alice") == 0


def test_upsert_replaces_fields_and_keeps_order(store: Store) -> None:
    first = [CatalogItem("a", title="A"), CatalogItem("b", title="B", price=3.5), CatalogItem("c")]
    store.upsert_items(first)
    updated_b = CatalogItem(
        "b", title="B2", description="new", category="Beauty > Makeup > Nails", brand="X", price=4.0, tags=("x", "y")
    )
    store.upsert_items([CatalogItem("d", title="D"), updated_b])

    assert [item.item_id for item in store.items()] == ["a", "b", "c", "d"]
    assert store.get_item("b") == updated_b
    assert store.get_item("a") == CatalogItem("a", title="A")
    assert store.get_item("missing") is None
    assert store.count_items() == 4


def test_upsert_with_a_repeated_id_keeps_the_last_version(store: Store) -> None:
    store.upsert_items([CatalogItem("a", title="old"), CatalogItem("b"), CatalogItem("a", title="new")])
    assert store.items() == [CatalogItem("a", title="new"), CatalogItem("b")]


def test_catalog_revisions_say_what_changed_since(open_store: OpenStore) -> None:
    """What a second server process sharing the store relies on to pick up items another process wrote."""
    writer, reader = open_store(), open_store()
    assert reader.catalog_revision() == 0
    first = writer.upsert_items([CatalogItem("a"), CatalogItem("b")])
    seen = reader.catalog_revision()
    assert seen == first > 0
    second = writer.upsert_items([CatalogItem("c"), CatalogItem("a", title="A2")])
    assert reader.catalog_revision() == second > first
    assert reader.items(since=seen) == [CatalogItem("a", title="A2"), CatalogItem("c")]  # catalog order
    assert reader.items(since=second) == []
    assert writer.upsert_items([]) == second  # nothing written, no new revision


def test_concurrent_catalog_writes_get_distinct_revisions(open_store: OpenStore) -> None:
    stores = [open_store() for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        revisions = list(pool.map(lambda i: stores[i % 4].upsert_items([CatalogItem(f"item{i}")]), range(40)))
    assert sorted(revisions) == list(range(1, 41))
    later = sorted((revision, f"item{i}") for i, revision in enumerate(revisions) if revision > 20)
    assert stores[0].items(since=20) == [CatalogItem(item) for _, item in later]  # each write inserted in turn


def test_a_store_from_before_catalog_revisions_is_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE items (seq INTEGER PRIMARY KEY, item_id TEXT NOT NULL UNIQUE, title TEXT, description "
                "TEXT, category TEXT, brand TEXT, price FLOAT, tags TEXT NOT NULL, updated_at FLOAT NOT NULL)"
            )
        )
        connection.execute(text("INSERT INTO items (item_id, title, tags, updated_at) VALUES ('old', 'Old', '[]', 0)"))
    engine.dispose()
    store = Store(url)
    try:
        assert store.items() == [CatalogItem("old", title="Old")]
        assert store.catalog_revision() == 0
        revision = store.upsert_items([CatalogItem("new")])
        assert store.items(since=0) == [CatalogItem("new")]
        assert revision == 1
    finally:
        store.close()


def test_known_items_with_more_ids_than_one_query_takes(store: Store) -> None:
    store.upsert_items([CatalogItem(f"item{i}") for i in range(0, 3000, 2)])
    asked = [f"item{i}" for i in range(3000)] + ["item0", "unknown"]
    assert store.known_items(asked) == {f"item{i}" for i in range(0, 3000, 2)}
    assert store.known_items([]) == set()


def test_data_survives_closing_and_reopening(open_store: OpenStore) -> None:
    first = open_store()
    first.add_events(events("alice", 3))
    first.upsert_items([CatalogItem("a", tags=("t",))])
    first.close()

    second = open_store()  # creating the tables again is a no-op
    assert second.history("alice") == events("alice", 3)
    assert second.items() == [CatalogItem("a", tags=("t",))]


def test_a_batch_of_5000_events_is_fast(store: Store) -> None:
    batch = [StoredEvent(f"user{i % 100}", f"item{i}", EventType.VIEW, float(i)) for i in range(5000)]
    start = time.perf_counter()
    store.add_events(batch)
    assert time.perf_counter() - start < 2.0
    assert store.count_events() == 5000


@pytest.mark.postgres
def test_describe_masks_the_password() -> None:
    url = make_url(POSTGRES_URL)
    url = url.set(password=url.password or "not-shown")  # the test server trusts local connections: any password does
    schema = f"test_{uuid.uuid4().hex}"
    store = Store(url.render_as_string(hide_password=False), schema=schema)
    try:
        assert store.backend == "postgresql"
        assert "***" in store.describe()
        assert str(url.password) not in store.describe()
    finally:
        store.close()
        _drop_schema(schema)


@pytest.mark.parametrize("url", ["mysql://u@h/db", "postgresql+asyncpg://h/db", "not a url", "sqlite://"])
def test_unsupported_urls_raise_value_error(url: str) -> None:
    with pytest.raises(ValueError, match=r"URL|SQLite"):
        Store(url)


def test_sqlite_acknowledged_events_survive_sigkill(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    child = f"""
import os, signal
from shoprec.storage.store import Store, StoredEvent
from shoprec.types import EventType
store = Store({url!r})
for batch in range(5):
    store.add_events([StoredEvent("u", f"i{{batch}}-{{i}}", EventType.CLICK, float(i)) for i in range(200)])
os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr

    store = Store(url)
    history = store.history("u")
    store.close()
    assert [e.item_id for e in history] == [f"i{batch}-{i}" for batch in range(5) for i in range(200)]
