"""One narrow store for events and catalog items on SQLAlchemy Core, backend chosen by URL.

SQLite is the embedded default: WAL with ``synchronous=FULL`` so that an acknowledged write survives a killed process
and a power cut. PostgreSQL connections set ``synchronous_commit=on`` themselves, whatever the server's default. A
writer that finds the store locked waits up to the busy timeout, then gets ``StoreBusy`` (never a driver error), so
the API can answer "try again" instead of failing.

A user's history is ordered by event time: the event's ``timestamp``, or when it was received if it has none; ties
keep arrival order (the autoincrement id). Items get an autoincrement ``seq`` that an upsert leaves alone, so the
catalog keeps its first-insertion order.

Personal reads (a user's history for a feed, the assistant or a training export) follow the shop's consent policy: a
user who may not be personalised reads as having no history. Forgetting a user erases their events, conversations
and consent record and keeps only an erasure tag (``privacy.erasure``), and on SQLite rewrites the file so that the
deleted bytes are gone too.

Every catalog write takes the next catalog revision (a one-row counter, locked by the write until it commits) and
stamps its items with it, so revisions commit in order: a server process that has applied revision r reads exactly
the items changed since with ``items(since=r)``, and several processes serving one store stay in step.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.sql.elements import BindParameter

from shoprec.privacy.consent import ConsentPolicy
from shoprec.privacy.erasure import erasure_tag
from shoprec.types import EventType

_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql",
    "postgresql+psycopg": "postgresql",
}
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_IN_CHUNK = 500  # ids per IN list: far below SQLite's and PostgreSQL's bound-parameter limits
DEFAULT_BUSY_TIMEOUT_S = 5.0  # how long a write waits for a lock (or a pooled connection) before StoreBusy
POOL_SIZE = 40  # FastAPI's worker threads
_SQLITE_CONTENTION = {sqlite3.SQLITE_BUSY: "database is locked", sqlite3.SQLITE_LOCKED: "table is locked"}
_POSTGRES_CONTENTION = {  # SQLSTATEs that say "others hold what this needs; retry later", not "this is wrong"
    "55P03": "lock timeout",
    "40001": "serialization failure",
    "40P01": "deadlock",
    "53300": "too many connections",
}
_SQLITE_SYNCHRONOUS = {0: "off", 1: "normal", 2: "full", 3: "extra"}

_metadata = MetaData()
_items = Table(
    "items",
    _metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Text, nullable=False, unique=True),
    Column("title", Text),
    Column("description", Text),
    Column("category", Text),
    Column("brand", Text),
    Column("price", Float),
    Column("tags", Text, nullable=False),  # JSON list
    Column("available", Integer, nullable=False, server_default="1"),  # 0: out of stock or delisted, never shown
    Column("updated_at", Float, nullable=False),
    Column("revision", Integer, nullable=False, server_default="0", index=True),  # the catalog write that set it
)
_catalog = Table(  # one row: the revision of the latest catalog write
    "catalog_revision",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("revision", Integer, nullable=False),
)
_events = Table(
    "events",
    _metadata,
    # BIGINT on PostgreSQL; plain INTEGER on SQLite so that the column is the rowid
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("user_id", Text, nullable=False),
    Column("item_id", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("timestamp", Float),
    Column("received_at", Float, nullable=False),
)
_chat_turns = Table(  # the assistant's conversations: one row per answered turn
    "chat_turns",
    _metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("session_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),  # pseudonymised, as in events
    Column("turn", Text, nullable=False),  # JSON: what the next turn refines (intent, items shown)
    Column("created_at", Float, nullable=False),
    Index("ix_chat_turns_session", "session_id", "id"),
)
_consents = Table(  # a user's latest answer to "may we personalise with your behaviour?"
    "consents",
    _metadata,
    Column("user_id", Text, primary_key=True),  # pseudonymised
    Column("personalised", Integer, nullable=False),  # 1 yes, 0 no
    Column("updated_at", Float, nullable=False),
)
_erasures = Table(  # forgotten users: only the erasure tag, never the pseudonym
    "erasures",
    _metadata,
    Column("tag", Text, primary_key=True),
    Column("erased_at", Float, nullable=False),
)
_HISTORY_ORDER = (func.coalesce(_events.c.timestamp, _events.c.received_at), _events.c.id)  # event time, then arrival
_HISTORY_INDEX = Index("ix_events_user_time", _events.c.user_id, *_HISTORY_ORDER)  # serves both reads below, in order
_OLD_HISTORY_INDEX = "ix_events_user_id_id"  # arrival order only; stores made before event time ordered histories

# The reads of every served request, built once: building a statement and its cache key costs more than SQLite
# takes to run it (a third of the store's time per request, measured).
_REVISION = select(_catalog.c.revision).where(_catalog.c.id == 1)


def _personal(policy: ConsentPolicy, user: Any) -> Any:
    """The condition under which ``user``'s events may be read for personalisation: opt-out, no "no" on record;
    opt-in, a "yes" on record. ``user`` is the bound id of a lone read (the subquery then runs once, not per row)
    or the events' own column."""
    answer = select(_consents.c.user_id).where(_consents.c.user_id == user)
    return (
        answer.where(_consents.c.personalised == 1).exists()
        if policy.required
        else ~answer.where(_consents.c.personalised == 0).exists()
    )


@dataclass(frozen=True)
class _PersonalReads:
    """The history reads of every served request under one consent policy, built once."""

    all_items: Any
    recent_items: Any
    histories: Any
    history: Any

    @classmethod
    def under(cls, policy: ConsentPolicy) -> _PersonalReads:
        user: BindParameter[str] = bindparam("user_id", type_=Text())
        user_items = select(_events.c.item_id).where(_events.c.user_id == user, _personal(policy, user))
        return cls(
            all_items=user_items.order_by(*_HISTORY_ORDER),
            recent_items=user_items.order_by(*(column.desc() for column in _HISTORY_ORDER)).limit(bindparam("limit")),
            histories=select(_events.c.user_id, _events.c.item_id)
            .where(_events.c.user_id.in_(bindparam("user_ids", expanding=True)), _personal(policy, _events.c.user_id))
            .order_by(_events.c.user_id, *_HISTORY_ORDER),
            history=select(_events.c.user_id, _events.c.item_id, _events.c.type, _events.c.timestamp)
            .where(_events.c.user_id == user, _personal(policy, user))
            .order_by(*_HISTORY_ORDER),
        )


@dataclass(frozen=True)
class Forgotten:
    """What one forget request erased."""

    events: int
    chat_turns: int
    tags: tuple[str, ...]  # the users' erasure tags, now kept in their place


@dataclass(frozen=True)
class Purged:
    """What one retention purge deleted."""

    events: int
    chat_turns: int


class StoreBusy(Exception):  # noqa: N818 - the name callers catch; it is a condition to retry, not a fault
    """Other writers held the store (or every connection) for the whole busy timeout; nothing of the failed call
    was stored, and the same call can be retried later."""


@dataclass(frozen=True)
class StoredEvent:
    """One behaviour event; ``user_id`` is already pseudonymised; without a ``timestamp`` it counts as happening when
    the store received it."""

    user_id: str
    item_id: str
    type: EventType
    timestamp: float | None = None


@dataclass(frozen=True)
class CatalogItem:
    """One catalog entry; ``category`` is a path such as ``"Beauty > Makeup > Nails"``."""

    item_id: str
    title: str | None = None
    description: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    tags: tuple[str, ...] = ()
    available: bool = True  # False: kept (and searchable by id) but never recommended or listed


def _parse(url: str) -> URL:
    """The URL if it names a supported backend, else a ValueError that says what is accepted."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise ValueError(f"not a database URL: {url!r}") from error
    if parsed.drivername not in _DRIVERS:
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}: use sqlite:///path/to/file.sqlite3 "
            "or postgresql+psycopg://user@host:port/db"
        )
    return parsed


class Store:
    """Events and catalog items in one database.

    ``schema`` (PostgreSQL only) puts the tables in that schema, created if missing, by setting ``search_path`` on
    each connection: it lets tests, or several deployments, share one server without seeing each other's data.
    ``busy_timeout`` (seconds) bounds how long a call waits for a lock or a free pooled connection before it
    raises ``StoreBusy``. ``consent`` decides whose history personal reads return.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT_S,
        consent: ConsentPolicy | None = None,
    ) -> None:
        parsed = _parse(url)
        self.consent = consent or ConsentPolicy()
        self._reads = _PersonalReads.under(self.consent)
        if not busy_timeout > 0:
            raise ValueError(f"busy_timeout must be a positive number of seconds: {busy_timeout!r}")
        self._backend = _DRIVERS[parsed.drivername]
        connect_args: dict[str, Any] = {}
        if self._backend == "sqlite":
            if schema is not None:
                raise ValueError("schema is a PostgreSQL option; SQLite keeps one store per file")
            if parsed.database in (None, "", ":memory:") or parsed.database.startswith("file:"):
                raise ValueError(f"SQLite needs a file path (an in-memory database would lose every event): {url!r}")
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            connect_args["check_same_thread"] = False  # the pool hands a connection to whichever thread asks
            connect_args["timeout"] = busy_timeout  # sqlite3's busy handler: wait for the writer's lock this long
        else:
            if schema is not None and not _SCHEMA_NAME.fullmatch(schema):
                raise ValueError(f"schema must be a plain SQL identifier: {schema!r}")
            connect_args["options"] = _postgres_options(schema, busy_timeout)
        # One pooled connection per concurrent thread (the API runs up to 40), reused across requests: opening one
        # costs two PRAGMAs on SQLite. A local file cannot drop a connection, so only PostgreSQL pings on checkout.
        sqlite_file = self._backend == "sqlite"
        self._engine = create_engine(
            parsed,
            pool_size=POOL_SIZE,
            max_overflow=0 if sqlite_file else POOL_SIZE,
            pool_timeout=busy_timeout,
            pool_pre_ping=not sqlite_file,
            connect_args=connect_args,
        )
        if self._backend == "sqlite":
            event.listen(self._engine, "connect", _sqlite_pragmas)
        with self._connect(write=True) as connection:
            if schema is not None:
                connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            _metadata.create_all(connection)
            _upgrade(connection)
            connection.execute(self._insert(_catalog).values(id=1, revision=0).on_conflict_do_nothing())

    def describe(self) -> str:
        """The backend, ``"sqlite"`` or ``"postgresql"``: all that health checks and logs show (a file path, host
        or user name would tell a stranger where the data lives)."""
        return self._backend

    def durability(self) -> dict[str, str]:
        """The settings that make an acknowledged write survive a crash, read back through a pooled connection:
        ``journal_mode`` and ``synchronous`` on SQLite, ``synchronous_commit`` and ``fsync`` on PostgreSQL."""
        with self._connect() as connection:
            if self._backend == "sqlite":
                mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar_one()
                synchronous = connection.exec_driver_sql("PRAGMA synchronous").scalar_one()
                return {"journal_mode": str(mode), "synchronous": _SQLITE_SYNCHRONOUS[int(synchronous)]}
            settings = ("synchronous_commit", "fsync")
            return {name: str(connection.exec_driver_sql(f"SHOW {name}").scalar_one()) for name in settings}

    def add_events(self, events: Sequence[StoredEvent]) -> int:
        """Append events in one transaction; when this returns they are durable. Returns how many were stored."""
        if not events:
            return 0
        received_at = time.time()
        rows = [
            {
                "user_id": e.user_id,
                "item_id": e.item_id,
                "type": EventType(e.type).value,
                "timestamp": e.timestamp,
                "received_at": received_at,
            }
            for e in events
        ]
        with self._connect(write=True) as connection:
            connection.execute(_events.insert(), rows)
        return len(rows)

    def history(self, user_id: str) -> list[StoredEvent]:
        """Every event of the user, oldest first (none when the consent policy withholds the user)."""
        with self._connect() as connection:
            rows = connection.execute(self._reads.history, {"user_id": user_id}).all()
        return [StoredEvent(row.user_id, row.item_id, EventType(row.type), row.timestamp) for row in rows]

    def recent_items(self, user_id: str, limit: int | None) -> list[str]:
        """The items of the user's ``limit`` most recent events (``None``: every event), oldest first: what the
        model reads and what "seen" means (none when the consent policy withholds the user). One indexed query, no
        event objects."""
        reads = self._reads
        with self._connect() as connection:
            if limit is None:
                return list(connection.execute(reads.all_items, {"user_id": user_id}).scalars().all())  # not row by row
            rows = connection.execute(reads.recent_items, {"user_id": user_id, "limit": max(limit, 0)}).all()
        return [row.item_id for row in reversed(rows)]

    def histories(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """Every listed user's whole history (item ids, oldest first; [] for a user without events) in ONE query: a
        feed batch of eight users then costs one statement instead of eight (SQLAlchemy's per-statement overhead
        was most of a history read)."""
        found: dict[str, list[str]] = {user: [] for user in user_ids}
        if len(found) == 1:  # a lone feed (an idle server's usual batch): no expanding IN to compile per call
            [user] = found
            return {user: self.recent_items(user, None)}
        if not found:
            return found
        with self._connect() as connection:
            rows = connection.execute(self._reads.histories, {"user_ids": list(found)}).all()  # one C call, not per row
        for user, item in rows:
            found[user].append(item)
        return found

    def add_chat_turn(self, session_id: str, user_id: str, turn: dict[str, Any]) -> None:
        """Keep one answered turn of a conversation (durable when this returns)."""
        row = {"session_id": session_id, "user_id": user_id, "turn": json.dumps(turn), "created_at": time.time()}
        with self._connect(write=True) as connection:
            connection.execute(_chat_turns.insert(), row)

    def last_chat_turn(self, session_id: str, user_id: str) -> dict[str, Any] | None:
        """The latest turn of ``session_id`` if it is ``user_id``'s conversation; None otherwise (a session id
        guessed or shared by another user reads as a new conversation, never as theirs)."""
        query = (
            select(_chat_turns.c.turn)
            .where(_chat_turns.c.session_id == session_id, _chat_turns.c.user_id == user_id)
            .order_by(_chat_turns.c.id.desc())
            .limit(1)
        )
        with self._connect() as connection:
            found = connection.execute(query).scalar_one_or_none()
        return None if found is None else dict(json.loads(found))

    def count_events(self) -> int:
        return self._count(_events)

    def upsert_items(self, items: Sequence[CatalogItem]) -> int:
        """Insert new items and replace the fields of known ones in one transaction; a known item keeps its place.
        Returns the catalog revision of this write."""
        latest = {item.item_id: item for item in items}  # a repeated id in one batch: the last version wins
        if not latest:
            return self.catalog_revision()
        updated_at = time.time()
        rows = [
            {
                "item_id": item.item_id,
                "title": item.title,
                "description": item.description,
                "category": item.category,
                "brand": item.brand,
                "price": item.price,
                "tags": json.dumps(list(item.tags)),
                "available": int(item.available),
                "updated_at": updated_at,
            }
            for item in latest.values()
        ]
        insert = self._insert(_items)
        statement = insert.on_conflict_do_update(
            index_elements=[_items.c.item_id],
            set_={name: insert.excluded[name] for name in [*rows[0], "revision"] if name != "item_id"},
        )
        with self._connect(write=True) as connection:
            # First statement of the transaction: it locks the counter row until the commit, so concurrent catalog
            # writes (other threads, other processes) get their revisions in commit order.
            bump = update(_catalog).where(_catalog.c.id == 1).values(revision=_catalog.c.revision + 1)
            revision = int(connection.execute(bump.returning(_catalog.c.revision)).scalar_one())
            connection.execute(statement, [row | {"revision": revision} for row in rows])
        return revision

    def catalog_revision(self) -> int:
        """The revision of the latest catalog write (0 for a store that never had one): one primary-key read."""
        with self._connect() as connection:
            return int(connection.execute(_REVISION).scalar_one())

    def items(self, since: int | None = None) -> list[CatalogItem]:
        """Every item in first-insertion order; with ``since``, only those written after that catalog revision."""
        query = select(_items).order_by(_items.c.seq)
        if since is not None:
            query = query.where(_items.c.revision > since)
        with self._connect() as connection:
            return [_item(row) for row in connection.execute(query)]

    def get_item(self, item_id: str) -> CatalogItem | None:
        with self._connect() as connection:
            row = connection.execute(select(_items).where(_items.c.item_id == item_id)).first()
        return None if row is None else _item(row)

    def known_items(self, item_ids: Iterable[str]) -> set[str]:
        """Which of ``item_ids`` are in the catalog, asking in chunks so that any number of ids fits."""
        known: set[str] = set()
        with self._connect() as connection:
            for chunk in _chunks(item_ids):
                known.update(connection.scalars(select(_items.c.item_id).where(_items.c.item_id.in_(chunk))))
        return known

    def count_items(self) -> int:
        return self._count(_items)

    def set_consent(self, user_id: str, personalised: bool) -> None:
        """Record the user's answer (the latest wins); durable when this returns."""
        insert = self._insert(_consents)
        row = {"user_id": user_id, "personalised": int(personalised), "updated_at": time.time()}
        statement = insert.values(row).on_conflict_do_update(
            index_elements=[_consents.c.user_id], set_={key: row[key] for key in ("personalised", "updated_at")}
        )
        with self._connect(write=True) as connection:
            connection.execute(statement)

    def consents(self, user_ids: Iterable[str] | None = None) -> dict[str, bool]:
        """Recorded answers of ``user_ids`` (default: every user with one); a user never asked is absent."""
        query = select(_consents.c.user_id, _consents.c.personalised)
        found: dict[str, bool] = {}
        with self._connect() as connection:
            if user_ids is None:
                return {row.user_id: bool(row.personalised) for row in connection.execute(query)}
            for chunk in _chunks(user_ids):
                rows = connection.execute(query.where(_consents.c.user_id.in_(chunk)))
                found.update({row.user_id: bool(row.personalised) for row in rows})
        return found

    def forget_users(self, user_ids: Sequence[str]) -> Forgotten:
        """Erase the users' events, conversations and consent records in one transaction and keep only their
        erasure tags; from the commit on, the users read as never seen. ``compact`` then removes the bytes."""
        events = turns = 0
        stamp = time.time()
        tags = [erasure_tag(user) for user in dict.fromkeys(user_ids)]
        with self._connect(write=True) as connection:
            for chunk in _chunks(user_ids):
                events += connection.execute(delete(_events).where(_events.c.user_id.in_(chunk))).rowcount
                turns += connection.execute(delete(_chat_turns).where(_chat_turns.c.user_id.in_(chunk))).rowcount
                connection.execute(delete(_consents).where(_consents.c.user_id.in_(chunk)))
            if tags:
                rows = [{"tag": tag, "erased_at": stamp} for tag in tags]
                connection.execute(self._insert(_erasures).on_conflict_do_nothing(), rows)
        return Forgotten(events=events, chat_turns=turns, tags=tuple(tags))

    def erased_tags(self) -> frozenset[str]:
        """Erasure tags of every user forgotten so far: what retraining leaves out of data files."""
        with self._connect() as connection:
            return frozenset(connection.execute(select(_erasures.c.tag)).scalars())

    def purge(self, before: float) -> Purged:
        """Delete events that happened (or, without a time, arrived) before ``before`` (epoch seconds) and
        conversation turns older than it: the retention period's end."""
        with self._connect(write=True) as connection:
            events = connection.execute(delete(_events).where(_HISTORY_ORDER[0] < before)).rowcount
            turns = connection.execute(delete(_chat_turns).where(_chat_turns.c.created_at < before)).rowcount
        return Purged(events=events, chat_turns=turns)

    def compact(self) -> bool:
        """SQLite: rebuild the file and empty the write-ahead log, so that deleted rows leave no bytes behind
        (a delete only marks space free). Returns False where that could not finish (a reader held the log) or
        does not apply (PostgreSQL: deleted rows are gone from queries at once; its own VACUUM reclaims space)."""
        if self._backend != "sqlite":
            return False
        with self._connect(autocommit=True) as connection:
            connection.exec_driver_sql("VACUUM")
            busy, _, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        return not busy

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    @contextmanager
    def _connect(self, write: bool = False, autocommit: bool = False) -> Iterator[Connection]:
        """A pooled connection, in one committed transaction when ``write`` (outside any when ``autocommit``, for
        statements such as VACUUM); lock contention that outlasts the busy timeout leaves as ``StoreBusy`` (the
        transaction rolled back)."""
        try:
            if autocommit:
                with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                    yield connection
                return
            with self._engine.begin() if write else self._engine.connect() as connection:
                yield connection
        except PoolTimeout as error:
            raise StoreBusy(f"{self._backend} store busy: no free connection") from error
        except DBAPIError as error:
            reason = _contention(error)
            if reason is None:
                raise
            raise StoreBusy(f"{self._backend} store busy: {reason}") from error

    def _insert(self, table: Table) -> Any:
        """The backend's INSERT, which knows ON CONFLICT (SQLAlchemy's generic one does not)."""
        return (sqlite.insert if self._backend == "sqlite" else postgresql.insert)(table)

    def _count(self, table: Table) -> int:
        with self._connect() as connection:
            return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def _chunks(ids: Iterable[str]) -> Iterator[list[str]]:
    """The distinct ``ids`` in IN lists of at most _IN_CHUNK, so that any number of them fits one query each."""
    distinct = list(dict.fromkeys(ids))
    for start in range(0, len(distinct), _IN_CHUNK):
        yield distinct[start : start + _IN_CHUNK]


def _upgrade(connection: Connection) -> None:
    """Bring a store made by an older version up to date. Stores from before catalog revisions get the column and
    its index (their items count as revision 0, which every server has read at startup); stores from before event
    time ordered histories get the history index in place of the arrival-order one; stores from before item
    availability get the column with every item available."""
    columns = {column["name"] for column in inspect(connection).get_columns("items")}
    if "revision" not in columns:
        connection.execute(text("ALTER TABLE items ADD COLUMN revision INTEGER NOT NULL DEFAULT 0"))
        for index in _items.indexes:
            index.create(connection)
    if "available" not in columns:
        connection.execute(text("ALTER TABLE items ADD COLUMN available INTEGER NOT NULL DEFAULT 1"))
    if not _has_index(connection, str(_HISTORY_INDEX.name)):
        _HISTORY_INDEX.create(connection)
        connection.execute(text(f"DROP INDEX IF EXISTS {_OLD_HISTORY_INDEX}"))


def _has_index(connection: Connection, name: str) -> bool:
    """Asked of the catalog directly: SQLAlchemy's reflection skips expression indexes, and creating one "if not
    exists" would lock the events table on PostgreSQL at every start."""
    if connection.dialect.name == "sqlite":
        query = text("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = :name")
        return bool(connection.execute(query, {"name": name}).scalar_one())
    return connection.execute(text("SELECT to_regclass(:name)"), {"name": name}).scalar_one() is not None


def _postgres_options(schema: str | None, busy_timeout: float) -> str:
    """Per-connection settings: commits wait for the WAL flush whatever the server's default, lock waits give up
    after the busy timeout, and ``schema`` (when given) is where the tables live."""
    options = f"-csynchronous_commit=on -clock_timeout={round(busy_timeout * 1000)}"
    return options if schema is None else f"{options} -csearch_path={schema}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Durable commits (fsync of the WAL at each commit) and readers that never block the writer."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _contention(error: DBAPIError) -> str | None:
    """Why the database refused for now (locked, out of connections, a conflict to retry), or None if it is not
    contention."""
    cause = error.orig
    if isinstance(cause, sqlite3.Error):
        return _SQLITE_CONTENTION.get(cause.sqlite_errorcode & 0xFF)  # the primary code, without extended bits
    return _POSTGRES_CONTENTION.get(str(getattr(cause, "sqlstate", "")))


def _item(row: Any) -> CatalogItem:
    return CatalogItem(
        item_id=row.item_id,
        title=row.title,
        description=row.description,
        category=row.category,
        brand=row.brand,
        price=row.price,
        tags=tuple(json.loads(row.tags)),
        available=bool(row.available),
    )
