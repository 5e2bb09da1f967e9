"""Text vectors cached on disk, so re-running an experiment does not re-encode the catalog.

One SQLite file (stdlib) holds every encoder's vectors as BLOBs keyed by (encoder name, kind, sha256 of the text):
lookups are indexed, and each chunk of new vectors is committed in one transaction, so a crash mid-write loses at
most that chunk and never corrupts what earlier runs stored. A file that is not a sound database is set aside and
rebuilt rather than trusted.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd

from shoprec.encoders.item_text import catalog_texts
from shoprec.encoders.text import Kind, OnBatch, TextEncoder, check_kind

log = logging.getLogger(__name__)

DATABASE = "vectors.sqlite3"
COMMIT_EVERY = 512  # texts encoded per transaction: bounds what a crash can lose
_LOOKUP_CHUNK = 500  # keys per SELECT, below SQLite's bound-parameter limit
_SCHEMA = """
CREATE TABLE IF NOT EXISTS vectors (
    encoder TEXT NOT NULL,
    kind TEXT NOT NULL,
    key BLOB NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (encoder, kind, key)
)
"""
# A rowid table on 8 KiB pages stores five 1.5 KB vectors per page; WITHOUT ROWID would spill each one to an
# overflow page and take nearly three times the space.
_PAGE_SIZE = 8192


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def _connect(path: Path) -> sqlite3.Connection:
    """A connection with the table in place; the page size only takes effect when the file is created."""
    connection = sqlite3.connect(path, timeout=30)
    try:
        connection.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
        connection.execute(_SCHEMA)
    except sqlite3.Error:
        connection.close()
        raise
    return connection


def _damage(path: Path) -> str | None:
    """Why the file at ``path`` cannot be trusted, or None when it is sound (a missing file is created sound)."""
    try:
        with closing(_connect(path)) as connection:
            result = str(connection.execute("PRAGMA quick_check").fetchone()[0])
    except sqlite3.OperationalError:  # locked or unreadable: the file may be fine, so never discard it for that
        raise
    except sqlite3.DatabaseError as error:  # not a database, or malformed
        return str(error)
    return None if result == "ok" else result


def _check_or_rebuild(path: Path) -> None:
    """A damaged file is renamed to ``*.corrupt`` (kept for a post-mortem) and an empty cache takes its place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    problem = _damage(path)
    if problem is None:
        return
    log.warning("encoder cache %s is damaged (%s); rebuilding it", path, problem)
    path.replace(path.with_name(path.name + ".corrupt"))
    for leftover in ("-journal", "-wal", "-shm"):  # a stale journal must not be replayed into the new file
        path.with_name(path.name + leftover).unlink(missing_ok=True)
    _connect(path).close()


def _shifted(on_batch: OnBatch | None, offset: int) -> OnBatch | None:
    """Progress of one chunk reported as progress over the whole call."""
    if on_batch is None:
        return None
    return lambda done: on_batch(offset + done)


class CachedEncoder(TextEncoder):
    """Wraps an encoder: known texts come from ``directory``, only the missing distinct texts are encoded.

    The file is checked (and rebuilt if damaged) once, here; each ``encode`` then opens a plain connection, which
    keeps the wrapper usable from any thread.
    """

    def __init__(self, encoder: TextEncoder, directory: Path) -> None:
        self.encoder = encoder
        self.name = encoder.name
        self.dim = encoder.dim
        self.path = Path(directory) / DATABASE
        _check_or_rebuild(self.path)

    def encode(self, texts: Sequence[str], kind: Kind = "passage", on_batch: OnBatch | None = None) -> np.ndarray:
        check_kind(kind)
        keys = {text: text_key(text) for text in texts if text.strip()}
        with closing(sqlite3.connect(self.path, timeout=30)) as connection:
            found = self._lookup(connection, list(keys.values()), kind)
            missing = [text for text, key in keys.items() if key not in found]
            n_done = len(texts) - len(missing)
            for start in range(0, len(missing), COMMIT_EVERY):
                chunk = missing[start : start + COMMIT_EVERY]
                vectors = self.encoder.encode(chunk, kind, _shifted(on_batch, n_done + start))
                rows = [(self.name, kind, keys[t], v.tobytes()) for t, v in zip(chunk, vectors, strict=True)]
                with connection:  # one transaction per chunk
                    connection.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)
                found.update({keys[t]: v for t, v in zip(chunk, vectors, strict=True)})
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            if text in keys:
                out[row] = found[keys[text]]
        return out

    def _lookup(self, connection: sqlite3.Connection, keys: list[bytes], kind: Kind) -> dict[bytes, np.ndarray]:
        """Stored vectors of ``keys``; a row of the wrong size counts as missing and is encoded again."""
        found: dict[bytes, np.ndarray] = {}
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = keys[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, vector FROM vectors WHERE encoder = ? AND kind = ? AND key IN ({marks})"
            for key, blob in connection.execute(query, (self.name, kind, *chunk)):
                if len(blob) == self.dim * 4:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found


def encode_catalog(
    catalog: pd.DataFrame, encoder: TextEncoder, max_chars: int = 512, on_batch: OnBatch | None = None
) -> np.ndarray:
    """(n_items + 1, dim) item vectors with row 0 (padding) zero: what training passes as TrainData.item_vectors.

    The catalog must be indexed by item index 1..n, so that vector row i is item i.
    """
    if not catalog.index.equals(pd.RangeIndex(1, len(catalog) + 1)):
        raise ValueError("the catalog must be indexed by item index 1..n in order")
    vectors = encoder.encode(catalog_texts(catalog, max_chars), "passage", on_batch)
    return np.vstack([np.zeros((1, encoder.dim), dtype=np.float32), vectors])
