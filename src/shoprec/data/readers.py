"""Readers for user-supplied catalog and event files: CSV, JSONL (either optionally gzipped) and Parquet.

Rows are validated with column operations; each bad row becomes a Reject carrying its line number and a reason
while the good rows load. Only a file that cannot be read at all (unknown format, missing required column)
raises SchemaError. Raw user ids are replaced by pseudonyms here, before anything else sees them, and users who may
not be trained on (no consent, forgotten) are left out here, before any vocabulary is built from them.
"""

from __future__ import annotations

import csv
import gzip
import html
import io
import json
import math
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from shoprec.data.dataset import CATALOG_COLUMNS, Dataset
from shoprec.data.rejects import LoadReport, SchemaError
from shoprec.privacy.consent import Admission, parse_consent
from shoprec.types import EventType, Sequences, Vocabulary

TABLE_SUFFIXES = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".parquet")
EVENT_COLUMNS = ("user", "item_id", "event_type", "timestamp", "value", "line")
_EVENT_TYPES = frozenset(EventType)
_EPOCH = pd.Timestamp(0, tz="UTC")
_BAD = object()  # what a cell converter returns for a value of the wrong type


def table_suffix(path: Path) -> str | None:
    """The format suffix of a readable table file (one of TABLE_SUFFIXES), or None."""
    name = path.name.lower()
    return next((suffix for suffix in TABLE_SUFFIXES if name.endswith(suffix)), None)


@dataclass
class _Table:
    """Raw cells of one file; rows that could not even be parsed are already in ``report``."""

    path: Path
    frame: pd.DataFrame  # positional index, one row per parsed record
    lines: np.ndarray  # (len(frame),) 1-based line of each row as a human sees it
    is_csv: bool
    report: LoadReport = field(default_factory=LoadReport)

    def raw(self, position: int) -> str:
        """The row as text, so an operator can find and fix it."""
        row = self.frame.iloc[position]
        if self.is_csv:
            return _csv_text(row.tolist())
        return json.dumps({k: v for k, v in row.items() if not _is_missing(v)}, default=str, ensure_ascii=False)


def _open_table(path: Path) -> _Table:
    """Parse a file by its extension into raw cells; CSV cells stay text so every check is ours."""
    suffix = table_suffix(path)
    if suffix is None:
        raise SchemaError(f"{path}: unknown file format; expected one of {', '.join(TABLE_SUFFIXES)}")
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
        if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
            frame = frame.reset_index()  # a frame saved with its ids as index still has its id column
        return _Table(path, frame, np.arange(1, len(frame) + 1), is_csv=False)
    data = path.read_bytes()
    try:
        text = (gzip.decompress(data) if suffix.endswith(".gz") else data).decode("utf-8-sig")
    except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as error:
        raise SchemaError(f"{path}: cannot be read as UTF-8 text: {error}") from error
    return _parse_csv(path, text) if suffix.startswith(".csv") else _parse_jsonl(path, text)


def _parse_csv(path: Path, text: str) -> _Table:
    """pandas' C parser when every row is one line; the csv module when quoted newlines or ragged rows appear."""
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=False)
    except pd.errors.EmptyDataError as error:
        raise SchemaError(f"{path}: empty file, expected a header line") from error
    except pd.errors.ParserError:
        return _parse_csv_slowly(path, text)
    n_lines = text.count("\n") + (not text.endswith("\n"))
    if n_lines != len(frame) + 1:
        return _parse_csv_slowly(path, text)
    frame.columns = [str(column).strip() for column in frame.columns]
    return _without_blank_rows(_Table(path, frame, np.arange(2, len(frame) + 2), is_csv=True))


def _parse_csv_slowly(path: Path, text: str) -> _Table:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [column.strip() for column in next(reader)]
    rows: list[list[str]] = []
    lines: list[int] = []
    report = LoadReport()
    start = reader.line_num + 1
    for row in reader:
        if len(row) > len(header):
            report.reject(path, start, f"expected {len(header)} fields, found {len(row)}", _csv_text(row))
        else:
            rows.append(row + [""] * (len(header) - len(row)))
            lines.append(start)
        start = reader.line_num + 1
    frame = pd.DataFrame(rows, columns=header, dtype=str)
    return _without_blank_rows(_Table(path, frame, np.asarray(lines, dtype=np.int64), True, report))


def _without_blank_rows(table: _Table) -> _Table:
    blank = (table.frame == "").all(axis=1).to_numpy()
    for line in table.lines[blank].tolist():
        table.report.reject(table.path, line, "empty line", "")
    table.frame, table.lines = table.frame[~blank].reset_index(drop=True), table.lines[~blank]
    return table


def _parse_jsonl(path: Path, text: str) -> _Table:
    records: list[dict[str, object]] = []
    lines: list[int] = []
    report = LoadReport()
    pieces = text.split("\n")
    for number, piece in enumerate(pieces[:-1] if text.endswith("\n") else pieces, start=1):
        line = piece.rstrip("\r")
        record: object = None
        reason = "empty line"
        if line.strip():
            try:
                record, reason = json.loads(line), "not a JSON object"
            except json.JSONDecodeError as error:
                reason = f"not valid JSON: {error.msg}"
        if isinstance(record, dict):
            records.append(record)
            lines.append(number)
        else:
            report.reject(path, number, reason, line)
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    return _Table(path, frame, np.asarray(lines, dtype=np.int64), is_csv=False, report=report)


def _csv_text(values: Sequence[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(values)
    return buffer.getvalue()


def _require(table: _Table, columns: tuple[str, ...]) -> None:
    if not len(table.frame.columns):  # a JSONL file with no parsable record: nothing to check, all rejected
        table.frame = pd.DataFrame({column: pd.Series(dtype=object) for column in columns})
    missing = [column for column in columns if column not in table.frame.columns]
    if missing:
        found = ", ".join(map(str, table.frame.columns))
        raise SchemaError(f"{table.path}: missing required column(s) {', '.join(missing)} (found: {found})")


class _Verdicts:
    """The first reason each row fails, by position; rows never flagged load."""

    def __init__(self, n_rows: int) -> None:
        self.ok = np.ones(n_rows, dtype=bool)
        self.reasons = np.full(n_rows, None, dtype=object)

    def flag(self, mask: np.ndarray | pd.Series, reason: str | Callable[[np.ndarray], Iterable[str]]) -> None:
        """Reject rows where ``mask`` holds; ``reason`` may build one message per rejected position."""
        fresh = np.flatnonzero(np.asarray(mask, dtype=bool) & self.ok)
        self.ok[fresh] = False
        self.reasons[fresh] = [reason] * len(fresh) if isinstance(reason, str) else list(reason(fresh))

    def duplicates(
        self, keys: pd.DataFrame, lines: np.ndarray, describe: Callable[[int, int], str], among: np.ndarray
    ) -> None:
        """Reject rows (of those in ``among``) whose ``keys`` repeat an earlier loadable row, described by
        ``describe(position, line of the first one)``."""
        rows = self.ok & among
        candidates = keys[rows]
        repeated = np.zeros_like(rows)
        repeated[rows] = candidates.duplicated(keep="first").to_numpy()
        if repeated.any():
            group = candidates.groupby(list(candidates.columns), sort=False, dropna=False).ngroup().to_numpy()
            first_line = pd.Series(lines[rows]).groupby(group).transform("first").to_numpy()[repeated[rows]]
            self.flag(repeated, lambda positions: map(describe, positions, first_line))

    def record(self, table: _Table) -> np.ndarray:
        """Move flagged rows into the table's report (sorted by line); returns the mask of rows to keep."""
        for position in np.flatnonzero(~self.ok):
            table.report.reject(
                table.path, int(table.lines[position]), self.reasons[position], table.raw(int(position))
            )
        table.report.rejects.sort(key=lambda reject: reject.line)
        table.report.loaded = int(self.ok.sum())
        return self.ok


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _convert(series: pd.Series, cell: Callable[[object], object]) -> tuple[pd.Series, np.ndarray]:
    """Apply a per-cell converter; cells it returns _BAD for become None and are flagged."""
    values = [cell(value) for value in series.astype(object)]
    bad = np.fromiter((value is _BAD for value in values), dtype=bool, count=len(values))
    return pd.Series([None if b else v for b, v in zip(bad, values, strict=True)], dtype=object), bad


def _ids(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Stripped text ids ('' when missing) and a mask of cells of the wrong type; integer ids count as text."""
    if isinstance(series.dtype, pd.StringDtype):
        return series.fillna("").str.strip().reset_index(drop=True), np.zeros(len(series), dtype=bool)
    ids, bad = _convert(series, _id_cell)
    return ids.fillna("").astype(str), bad


def _id_cell(value: object) -> object:
    if _is_missing(value):
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():  # Parquet int columns with nulls
        return str(int(value))
    return _BAD


def _as_text(series: pd.Series) -> pd.Series:
    """Every cell as stripped text ('' when missing) so pandas' vectorised parsers can take it."""
    if isinstance(series.dtype, pd.StringDtype):
        return series.fillna("").str.strip().reset_index(drop=True)
    return pd.Series(
        ["" if _is_missing(v) else v.strip() if isinstance(v, str) else json.dumps(v, default=str) for v in series],
        dtype=str,
    )


def _numbers(series: pd.Series | None, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Floats (NaN when missing) and a mask of cells that are present but not a finite number."""
    if series is None:
        return np.full(n_rows, np.nan), np.zeros(n_rows, dtype=bool)
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        return numbers, np.isinf(numbers)
    text = _as_text(series)
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
    return numbers, text.ne("").to_numpy() & ~np.isfinite(numbers)


_UTC_SUFFIX = r"\s+(?:UTC|GMT)$"


def _timestamps(series: pd.Series | None, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Unix seconds (NaN when missing) and a mask of unparsable cells. Numbers are unix seconds; strings may
    also be ISO-8601, read as UTC when they carry no offset, or end in " UTC" as exports often write them
    (REES46: "2019-10-01 00:00:07 UTC")."""
    if series is not None and pd.api.types.is_datetime64_any_dtype(series):
        stamps = series.dt.tz_localize("UTC") if series.dt.tz is None else series
        return _epoch_seconds(stamps), np.zeros(n_rows, dtype=bool)
    seconds, bad = _numbers(series, n_rows)
    if series is not None and bad.any():
        seconds[bad] = _epoch_seconds(
            pd.to_datetime(
                _as_text(series)[bad].str.replace(_UTC_SUFFIX, "+00:00", regex=True),
                errors="coerce",
                utc=True,
                format="ISO8601",
            )
        )
        bad[bad] = ~np.isfinite(seconds[bad])
    return seconds, bad


def _epoch_seconds(dates: pd.Series) -> np.ndarray:
    return ((dates - _EPOCH) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan, copy=True)


def read_events(
    path: Path,
    pseudonymize: Callable[[str], str],
    known_items: Collection[str] | None = None,
    admission: Admission | None = None,
) -> tuple[pd.DataFrame, LoadReport]:
    """Load behaviour events with columns EVENT_COLUMNS; ``user`` holds pseudonyms, never raw ids.

    Exact repeats (same user, item, type and timestamp as an earlier row) are rejected only when the row has a
    timestamp: without one a repeated row is indistinguishable from a genuine repeat event. An optional ``consent``
    column (true/false, empty: not stated) gives each user's answer, the latest stated one by event time winning;
    users ``admission`` does not admit are left out whole and counted in the report.
    """
    table = _open_table(Path(path))
    _require(table, ("user_id", "item_id"))
    frame, n_rows = table.frame, len(table.frame)
    users, bad_user = _ids(frame["user_id"])
    items, bad_item = _ids(frame["item_id"])
    types = _as_text(frame["event_type"]).str.lower() if "event_type" in frame else pd.Series([""] * n_rows)
    types = types.mask(types.eq(""), EventType.VIEW.value)
    stamps, bad_stamp = _timestamps(frame.get("timestamp"), n_rows)
    values, bad_value = _numbers(frame.get("value"), n_rows)
    answers, bad_consent = _convert(frame.get("consent", pd.Series([None] * n_rows)), _consent_cell)

    verdicts = _Verdicts(n_rows)
    verdicts.flag(bad_user, "user_id must be text or an integer")
    verdicts.flag(users.eq(""), "missing user_id")
    verdicts.flag(bad_item, "item_id must be text or an integer")
    verdicts.flag(items.eq(""), "missing item_id")
    verdicts.flag(~types.isin(_EVENT_TYPES), lambda rows: (f"unknown event type {types[r]!r}" for r in rows))
    verdicts.flag(bad_stamp, "bad timestamp")
    verdicts.flag(bad_value, "bad value: expected a number")
    verdicts.flag(bad_consent, "bad consent: expected true or false")
    if known_items is not None:
        verdicts.flag(~items.isin(set(known_items)), lambda rows: (f"unknown item {items[r]!r}" for r in rows))
    keys = pd.DataFrame({"user": users, "item": items, "type": types, "time": stamps})
    verdicts.duplicates(keys, table.lines, lambda _, line: f"duplicate of line {line}", np.isfinite(stamps))
    keep = verdicts.record(table)

    kept_users = users[keep]
    pseudonyms = {raw: pseudonymize(raw) for raw in kept_users.unique()}
    stated = _latest_answers(kept_users, stamps[keep], answers[keep])
    admission = admission or Admission()
    admitted = {raw for raw, pseudonym in pseudonyms.items() if admission.admits(pseudonym, stated.get(raw))}
    table.report.withheld_users += len(pseudonyms) - len(admitted)
    keep &= users.isin(admitted).to_numpy()
    table.report.loaded = int(keep.sum())
    kept_users = users[keep]
    events = pd.DataFrame(
        {
            "user": kept_users.map(pseudonyms).astype(str),
            "item_id": items[keep].astype(str),
            "event_type": types[keep].astype(str),
            "timestamp": stamps[keep],
            "value": values[keep],
            "line": table.lines[keep].astype(np.int64),
        }
    ).reset_index(drop=True)
    return events, table.report


def _consent_cell(value: object) -> object:
    try:
        return parse_consent(None if _is_missing(value) else value)
    except ValueError:
        return _BAD


def _latest_answers(users: pd.Series, stamps: np.ndarray, answers: pd.Series) -> dict[str, bool]:
    """Each user's latest stated consent: by event time, rows without one after the timed rows in file order."""
    stated = pd.DataFrame({"user": users.to_numpy(), "time": stamps, "answer": answers.to_numpy()})
    stated = stated[stated["answer"].notna()].sort_values("time", kind="stable", na_position="last")
    return {str(user): bool(answer) for user, answer in stated.groupby("user", sort=False)["answer"].last().items()}


def _text_cell(value: object) -> object:
    if _is_missing(value):
        return None
    return (html.unescape(value).strip() or None) if isinstance(value, str) else _BAD


def _sequence(value: object, split: bool) -> list[object] | None:
    """A list from a list/array, a JSON list string, or plain text (split on commas when ``split``)."""
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list):
                return parsed
        return list(value.split(",")) if split else [value]
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    return None


def _strings(parts: list[object] | None) -> object:
    if parts is None or not all(isinstance(part, str) for part in parts):
        return _BAD
    clean = [html.unescape(str(part)).strip() for part in parts]
    return [part for part in clean if part] or None


def _list_cell(value: object, split: bool) -> object:
    return None if _is_missing(value) else _strings(_sequence(value, split))


def _category_cell(value: object) -> object:
    """One " > "-joined path; Amazon metadata lists several paths, of which the first is the main one."""
    if _is_missing(value):
        return None
    parts = _sequence(value, split=False)
    if parts and isinstance(parts[0], (list, tuple, np.ndarray)):
        parts = list(parts[0])
    path = _strings(parts)
    return " > ".join(path) if isinstance(path, list) else path


def _price_cell(value: object) -> object:
    if _is_missing(value) or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float, np.integer, np.floating)):
        return _BAD
    try:
        price = float(value)
    except ValueError:
        return _BAD
    return price if math.isfinite(price) and price >= 0 else _BAD


_CATALOG_CELLS: dict[str, tuple[Callable[[object], object], str]] = {
    "title": (_text_cell, "title must be text"),
    "description": (_text_cell, "description must be text"),
    "category": (_category_cell, "category must be text or a list of text"),
    "brand": (_text_cell, "brand must be text"),
    "price": (_price_cell, "bad price: expected a number >= 0"),
    "tags": (partial(_list_cell, split=True), "tags must be text or a list of text"),
    "reviews": (partial(_list_cell, split=False), "reviews must be text or a list of text"),
}


def read_catalog(path: Path) -> tuple[pd.DataFrame, LoadReport]:
    """Load item attributes: a frame indexed by raw item id (file order) with exactly CATALOG_COLUMNS,
    None where absent. Text is HTML-unescaped; a repeated item id keeps its first loadable row."""
    table = _open_table(Path(path))
    _require(table, ("item_id",))
    ids, bad_id = _ids(table.frame["item_id"])
    verdicts = _Verdicts(len(ids))
    verdicts.flag(bad_id, "item_id must be text or an integer")
    verdicts.flag(ids.eq(""), "missing item_id")
    columns: dict[str, np.ndarray] = {}
    for column in CATALOG_COLUMNS:
        if column in table.frame:
            cell, problem = _CATALOG_CELLS[column]
            values, bad = _convert(table.frame[column], cell)
            columns[column] = values.to_numpy(dtype=object)
            verdicts.flag(bad, problem)
    verdicts.duplicates(
        pd.DataFrame({"item_id": ids}),
        table.lines,
        lambda position, line: f"duplicate item_id {ids[position]!r} (first on line {line})",
        np.ones(len(ids), dtype=bool),
    )
    keep = verdicts.record(table)
    absent = np.full(len(ids), None, dtype=object)
    catalog = pd.DataFrame(
        {column: columns.get(column, absent)[keep] for column in CATALOG_COLUMNS},
        index=pd.Index(ids[keep].to_numpy(dtype=object), dtype=object, name="item_id"),
        dtype=object,
    )
    return catalog, table.report


def build_dataset(name: str, events: pd.DataFrame, catalog: pd.DataFrame | None = None) -> Dataset:
    """Index events and catalog: items in catalog order then event-only items, users by first event, each
    user's events sorted by time. The sort is stable, so equal timestamps keep file order, and so do missing
    ones (after the timed events of that user). Timestamps are kept only when every event has one."""
    if catalog is None:
        catalog = pd.DataFrame(columns=list(CATALOG_COLUMNS), index=pd.Index([], dtype=object))
    items = Vocabulary.from_ids([*catalog.index, *pd.unique(events["item_id"])])
    user_codes, user_ids = pd.factorize(events["user"])
    users = Vocabulary(tuple(str(user) for user in user_ids))
    stamps = events["timestamp"].to_numpy(dtype=np.float64)
    order = np.lexsort((stamps, user_codes))
    counts = np.bincount(user_codes, minlength=len(users))
    item_index = pd.Index(items.ids, dtype=object).get_indexer(pd.Index(events["item_id"], dtype=object)) + 1
    sequences = Sequences(
        users=np.arange(1, len(users) + 1, dtype=np.int64),
        indptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        items=item_index[order].astype(np.int64),
        timestamps=stamps[order] if not np.isnan(stamps).any() else None,
    )
    frame = catalog.reindex(index=pd.Index(items.ids, dtype=object), columns=list(CATALOG_COLUMNS))
    frame = frame.astype(object).where(frame.notna(), None)
    frame.index = pd.RangeIndex(1, len(items) + 1, name="item_index")
    event_types = events["event_type"].to_numpy(dtype=str)[order]
    return Dataset(name, items, users, sequences, frame, event_types)
