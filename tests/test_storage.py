"""The event and catalog store: one suite, run on SQLite and on PostgreSQL.

The PostgreSQL cases use the server of the ``postgres_server`` fixture (a throwaway one unless
$SHOPREC_TEST_DATABASE_URL names one), each in a fresh database; they fail, never skip, when it cannot start.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shoprec.privacy.consent import ConsentPolicy
from shoprec.privacy.erasure import erasure_tag
from shoprec.storage.store import CatalogItem, Store, StoreBusy, StoredEvent
from shoprec.types import EventType

OpenStore = Callable[..., Store]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'serve' / 'shoprec.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def open_store(store_url: str) -> Iterator[OpenStore]:
    """Opens Stores on one fresh database (every call sees the same data) and closes them all afterwards."""
    opened: list[Store] = []

    def open_(**options: float) -> Store:
        opened.append(Store(store_url, **options))
        return opened[-1]

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    return open_store()


def events(user: str, n: int, start: int = 0) -> list[StoredEvent]:
    kinds = list(EventType)
    return [StoredEvent(user, f"item{i}", kinds[i % len(kinds)], 1.7e9 + i) for i in range(start, start + n)]


def item_ids(evs: list[StoredEvent]) -> list[str]:
    return [event.item_id for event in evs]


def test_history_is_per_user_in_time_order(store: Store) -> None:
    alice, bob = events("alice", 5), events("bob", 3)
    interleaved = [e for pair in zip(alice, bob, strict=False) for e in pair] + alice[3:]
    assert store.add_events(interleaved) == 8
    store.add_events([StoredEvent("alice", "late", EventType.PURCHASE)])  # no timestamp: it happened on arrival

    assert store.history("alice") == [*alice, StoredEvent("alice", "late", EventType.PURCHASE, None)]
    assert store.history("bob") == bob
    assert store.history("nobody") == []
    assert store.count_events() == 9
    assert store.add_events([]) == 0


def test_events_posted_out_of_time_order_are_read_in_time_order(store: Store) -> None:
    """A client that uploads a backlog late, or batches out of order: the model must read what happened first,
    first. Equal timestamps keep their arrival order; an event without a timestamp counts at its arrival."""
    timeline = events("alice", 12)  # item0 .. item11 at 1.7e9 + i
    store.add_events(timeline[8:])
    store.add_events([timeline[i] for i in (5, 3, 7, 0)])
    tie = StoredEvent("alice", "tie-after-item3", EventType.CLICK, timeline[3].timestamp)
    store.add_events([tie, timeline[1], timeline[6], timeline[4], timeline[2]])
    store.add_events([StoredEvent("alice", "untimed", EventType.VIEW)])
    store.add_events([StoredEvent("bob", "bob-first", EventType.VIEW, 1.0)])

    in_time = [*item_ids(timeline[:4]), "tie-after-item3", *item_ids(timeline[4:]), "untimed"]
    assert item_ids(store.history("alice")) == in_time
    assert store.recent_items("alice", None) == in_time
    assert store.recent_items("alice", 4) == in_time[-4:]
    assert store.recent_items("alice", 9) == in_time[-9:]
    assert store.recent_items("bob", None) == ["bob-first"]
    # a feed batch reads all its users in one query, each in the same order
    assert store.histories(["bob", "nobody", "alice"]) == {"bob": ["bob-first"], "nobody": [], "alice": in_time}
    # a lone user is read by its own statement: the same order
    assert store.histories(["alice"]) == {"alice": in_time}
    assert store.histories(["nobody"]) == {"nobody": []}
    assert store.histories([]) == {}


def test_recent_items_are_the_latest_events_items_oldest_first(store: Store) -> None:
    store.add_events(events("alice", 10))
    store.add_events(events("bob", 10))
    store.add_events(events("alice", 5, start=10))

    assert store.recent_items("alice", 3) == item_ids(events("alice", 3, start=12))
    assert store.recent_items("alice", 100) == item_ids(events("alice", 15))
    assert store.recent_items("alice", 0) == []
    assert store.recent_items("nobody", 5) == []
    assert store.recent_items("nobody", None) == []


def test_the_whole_history_is_every_event_however_long(store: Store) -> None:
    """What "seen" means when serving excludes a user's items: every event, not the model's window of recent ones."""
    store.add_events(events("alice", 1000)[::-1])  # newest first: the read order must come from the timestamps
    store.add_events(events("bob", 3))
    assert store.recent_items("alice", None) == item_ids(events("alice", 1000))
    assert store.recent_items("alice", 200) == item_ids(events("alice", 200, start=800))


def test_forget_erases_only_that_user_and_keeps_a_tag_not_the_pseudonym(store: Store) -> None:
    store.add_events(events("alice", 4) + events("bob", 2))
    store.add_chat_turn("s1", "alice", {"intent": "x"})
    store.add_chat_turn("s2", "bob", {"intent": "y"})
    store.set_consent("alice", True)
    store.set_consent("bob", True)

    erased = store.forget_users(["alice"])

    assert (erased.events, erased.chat_turns, erased.tags) == (4, 1, (erasure_tag("alice"),))
    assert store.history("alice") == [] and store.recent_items("alice", None) == []
    assert store.last_chat_turn("s1", "alice") is None and store.consents(["alice"]) == {}
    assert store.history("bob") == events("bob", 2) and store.last_chat_turn("s2", "bob") == {"intent": "y"}
    assert store.consents() == {"bob": True}
    assert store.erased_tags() == {erasure_tag("alice")}
    again = store.forget_users(["alice"])  # idempotent: nothing left, the tag kept once
    assert (again.events, again.chat_turns) == (0, 0) and store.erased_tags() == {erasure_tag("alice")}


def test_forgotten_pseudonym_leaves_no_bytes_in_the_sqlite_files(tmp_path: Path) -> None:
    """A delete only marks space free: the pseudonym's bytes stay in the file (and its log) until ``compact``."""
    pseudonym = "9f2c4e1a7b3d5f60" * 2
    store = Store(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    try:
        store.add_events(events(pseudonym, 50) + events("bob", 5))
        store.add_chat_turn("s", pseudonym, {"message": "lipstick"})
        store.set_consent(pseudonym, True)
        store.forget_users([pseudonym])

        def holding() -> list[str]:
            return [p.name for p in tmp_path.iterdir() if pseudonym.encode() in p.read_bytes()]

        assert holding(), "deleted rows' bytes should still be on disk before compaction (else this test is moot)"
        assert store.compact() is True
        assert holding() == []
        assert store.history("bob") == events("bob", 5)
    finally:
        store.close()


def test_consent_decides_whose_history_personal_reads_return(store_url: str) -> None:
    opt_out, opt_in = Store(store_url), Store(store_url, consent=ConsentPolicy(required=True))
    try:
        opt_out.add_events(events("alice", 3) + events("bob", 2) + events("carol", 1))
        opt_out.set_consent("alice", False)
        opt_out.set_consent("bob", True)
        both = (opt_out, opt_in)
        # opt-out: only a recorded "no" withholds; opt-in: only a recorded "yes" allows
        assert [s.histories(["alice", "bob", "carol"]) for s in both] == [
            {"alice": [], "bob": ["item0", "item1"], "carol": ["item0"]},
            {"alice": [], "bob": ["item0", "item1"], "carol": []},
        ]
        assert [s.recent_items("carol", None) for s in both] == [["item0"], []]
        assert [s.recent_items("alice", 2) for s in both] == [[], []]
        assert [len(s.history("carol")) for s in both] == [1, 0]
        opt_out.set_consent("alice", True)  # the latest answer wins
        assert opt_in.histories(["alice"]) == {"alice": ["item0", "item1", "item2"]}
        assert opt_out.count_events() == 6  # withholding hides, it does not delete
    finally:
        opt_out.close()
        opt_in.close()


def test_purge_deletes_what_happened_before_the_cut_and_keeps_the_rest(store: Store) -> None:
    now = time.time()
    old, recent = now - 400 * 86_400, now - 300 * 86_400
    store.add_events(
        [
            StoredEvent("alice", "old", EventType.VIEW, old),
            StoredEvent("alice", "recent", EventType.VIEW, recent),
            StoredEvent("bob", "untimed", EventType.VIEW),  # no timestamp: it happened when received, just now
        ]
    )
    store.add_chat_turn("s", "alice", {"intent": "x"})

    purged = store.purge(now - 365 * 86_400)

    assert (purged.events, purged.chat_turns) == (1, 0)
    assert store.recent_items("alice", None) == ["recent"] and store.recent_items("bob", None) == ["untimed"]
    assert store.purge(time.time() + 1).chat_turns == 1


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


def test_an_item_marked_unavailable_stays_so_until_it_is_written_back(store: Store) -> None:
    store.upsert_items([CatalogItem("a", title="A"), CatalogItem("b", available=False)])
    assert [(item.item_id, item.available) for item in store.items()] == [("a", True), ("b", False)]
    store.upsert_items([CatalogItem("b")])
    assert store.get_item("b") == CatalogItem("b", available=True)


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


def test_describe_names_only_the_backend(store_url: str) -> None:
    """/health shows describe() to anyone: the backend's name, never a file path, host, user or password."""
    store = Store(store_url)
    try:
        assert store.describe() == ("sqlite" if store_url.startswith("sqlite") else "postgresql")
    finally:
        store.close()


@pytest.mark.postgres
def test_schemas_keep_stores_on_one_database_apart(postgres_url: str) -> None:
    first, second = (Store(postgres_url, schema=f"s_{uuid.uuid4().hex}") for _ in range(2))
    try:
        first.add_events(events("alice", 2))
        first.upsert_items([CatalogItem("a")])
        assert (second.history("alice"), second.count_items(), second.catalog_revision()) == ([], 0, 0)
        assert first.history("alice") == events("alice", 2)
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("url", ["mysql://u@h/db", "postgresql+asyncpg://h/db", "not a url", "sqlite://"])
def test_unsupported_urls_raise_value_error(url: str) -> None:
    with pytest.raises(ValueError, match=r"URL|SQLite"):
        Store(url)


def test_acknowledged_events_survive_sigkill(store_url: str) -> None:
    child = f"""
import os, signal
from shoprec.storage.store import Store, StoredEvent
from shoprec.types import EventType
store = Store({store_url!r})
for batch in range(5):
    store.add_events([StoredEvent("u", f"i{{batch}}-{{i}}", EventType.CLICK, batch + i / 200) for i in range(200)])
os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr

    store = Store(store_url)
    history = store.history("u")
    store.close()
    assert [e.item_id for e in history] == [f"i{batch}-{i}" for batch in range(5) for i in range(200)]


def test_every_connection_commits_durably(store_url: str) -> None:
    """An acknowledgement promises durability: WAL + synchronous=FULL on SQLite, synchronous_commit=on on
    PostgreSQL, on whichever pooled connection serves the write, even where the database's own default is not."""
    url = make_url(store_url)
    if url.drivername.startswith("sqlite"):
        assert url.database is not None
        Path(url.database).parent.mkdir(parents=True)
        with sqlite3.connect(url.database) as plain:  # a file left in the rollback-journal mode
            assert plain.execute("PRAGMA journal_mode=DELETE").fetchone() == ("delete",)
        expected = {"journal_mode": "wal", "synchronous": "full"}
    else:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as admin:  # a server configured to acknowledge before the WAL is flushed
            admin.execute(text(f'ALTER DATABASE "{url.database}" SET synchronous_commit = off'))
        engine.dispose()
        expected = {"synchronous_commit": "on", "fsync": "on"}
    store = Store(store_url)
    try:
        with ThreadPoolExecutor(4) as pool:  # concurrent writes open several pooled connections ...
            list(pool.map(lambda n: store.add_events(events(f"user{n}", 50)), range(8)))
        assert [store.durability() for _ in range(4)] == [expected] * 4  # ... which the pool hands out in turn
    finally:
        store.close()


@contextmanager
def write_lock_held(store_url: str) -> Iterator[None]:
    """Another connection holds a write transaction on the events and the catalog until the block ends."""
    url = make_url(store_url)
    if url.drivername.startswith("sqlite"):
        assert url.database is not None
        holder = sqlite3.connect(url.database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the one write lock SQLite has
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("LOCK TABLE events, catalog_revision IN EXCLUSIVE MODE"))  # readers still read
            yield
    finally:
        engine.dispose()


def test_a_write_past_the_busy_timeout_raises_store_busy_and_stores_nothing(
    open_store: OpenStore, store_url: str
) -> None:
    store = open_store(busy_timeout=0.2)
    store.add_events(events("alice", 2))
    with write_lock_held(store_url):
        started = time.monotonic()
        with pytest.raises(StoreBusy, match="busy"):
            store.add_events(events("bob", 100))
        waited = time.monotonic() - started
        with pytest.raises(StoreBusy):
            store.upsert_items([CatalogItem("a")])
        assert store.recent_items("alice", None) == item_ids(events("alice", 2))  # reads go on meanwhile
    assert 0.2 <= waited < 3.0
    assert (store.history("bob"), store.count_events(), store.catalog_revision(), store.items()) == ([], 2, 0, [])
    store.add_events(events("bob", 100))  # the same call succeeds once the lock is gone
    assert store.upsert_items([CatalogItem("a")]) == 1
    assert store.count_events() == 102


def test_a_write_waits_for_a_lock_released_within_the_busy_timeout(open_store: OpenStore, store_url: str) -> None:
    store = open_store(busy_timeout=5.0)
    with ThreadPoolExecutor(1) as pool:
        with write_lock_held(store_url):
            pending = pool.submit(store.add_events, events("bob", 100))
            time.sleep(0.3)
            assert not pending.done()  # waiting on the lock, not failed
        assert pending.result(timeout=5) == 100
    assert store.recent_items("bob", None) == item_ids(events("bob", 100))


def test_many_concurrent_writers_all_succeed_or_get_store_busy(open_store: OpenStore) -> None:
    """The load that once answered HTTP 500 "database is locked": every write either lands whole or raises
    StoreBusy, never a driver error."""
    store = open_store(busy_timeout=0.05)
    outcomes: list[str] = []

    def write(writer: int) -> None:
        try:
            store.add_events(events(f"writer{writer}", 2000))
            outcomes.append("stored")
        except StoreBusy:
            outcomes.append("busy")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, range(16)))
    assert len(outcomes) == 16
    stored = [n for n in range(16) if store.recent_items(f"writer{n}", None)]
    assert len(stored) == outcomes.count("stored")
    assert all(store.recent_items(f"writer{n}", None) == item_ids(events("x", 2000)) for n in stored)


def test_a_store_from_before_event_time_order_is_upgraded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE events (id INTEGER PRIMARY KEY, user_id TEXT NOT NULL, item_id TEXT NOT NULL, "
                "type TEXT NOT NULL, timestamp FLOAT, received_at FLOAT NOT NULL)"
            )
        )
        connection.execute(text("CREATE INDEX ix_events_user_id_id ON events (user_id, id)"))
        connection.execute(
            text("INSERT INTO events (user_id, item_id, type, timestamp, received_at) VALUES (:u, :i, 'view', :t, 5)"),
            [{"u": "alice", "i": "second", "t": 2.0}, {"u": "alice", "i": "first", "t": 1.0}],
        )
    engine.dispose()
    for _ in range(2):  # upgraded once, then left alone
        store = Store(url)
        try:
            assert store.recent_items("alice", None) == ["first", "second"]
            assert store.recent_items("alice", 1) == ["second"]
        finally:
            store.close()
    with sqlite3.connect(tmp_path / "old.sqlite3") as plain:
        indexes = {
            name
            for (name,) in plain.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")
        }
    assert indexes == {"ix_events_user_time"}


def test_a_conversation_keeps_its_latest_turn_for_its_own_user_only(open_store: OpenStore) -> None:
    store = open_store()
    assert store.last_chat_turn("s1", "alice") is None
    store.add_chat_turn("s1", "alice", {"intent": {"category": "Nail Polish"}, "shown": ["a"]})
    store.add_chat_turn("s1", "alice", {"intent": {"max_price": 9.0}, "shown": ["b", "c"]})
    store.add_chat_turn("s2", "bob", {"intent": {}, "shown": []})
    again = open_store()  # another connection, as another API worker would read it
    assert again.last_chat_turn("s1", "alice") == {"intent": {"max_price": 9.0}, "shown": ["b", "c"]}
    assert again.last_chat_turn("s1", "bob") is None  # someone else's session id reads as a new conversation
    assert again.last_chat_turn("s2", "bob") == {"intent": {}, "shown": []}
