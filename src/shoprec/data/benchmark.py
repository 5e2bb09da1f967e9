"""Reader for the benchmark layout: ``sequences.txt`` (``user item item ...``, oldest first) plus item text in
``items.jsonl.gz`` (Amazon sets) or ``movies.dat`` (MovieLens)."""

from __future__ import annotations

import gzip
import html
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from shoprec.data.dataset import CATALOG_COLUMNS, USER_ATTRIBUTES, Dataset, empty_catalog
from shoprec.data.rejects import LoadReport, SchemaError
from shoprec.privacy.consent import Admission
from shoprec.types import Sequences, Vocabulary

SEQUENCES_FILE = "sequences.txt"


def is_benchmark_dir(path: Path) -> bool:
    return path.is_dir() and (path / SEQUENCES_FILE).is_file()


def read_benchmark(
    directory: Path,
    pseudonymize: Callable[[str], str],
    include_uninteracted: bool = False,
    admission: Admission | None = None,
) -> tuple[Dataset, LoadReport]:
    """Load a benchmark folder. The ranking universe is the set of items that occur in the sequences, as in
    the papers; ``include_uninteracted`` adds catalog items nobody interacted with (cold-start candidates).

    A line that is empty, has a user but no items, repeats a user, or names an item missing from a present
    catalog is rejected with its line number. Users ``admission`` does not admit are left out and counted.
    """
    directory = Path(directory)
    if not is_benchmark_dir(directory):
        raise SchemaError(f"{directory} has no {SEQUENCES_FILE}")
    catalog_rows = _read_item_text(directory)
    report = LoadReport()
    users: list[str] = []
    rows: list[list[str]] = []
    seen_users: set[str] = set()
    path = directory / SEQUENCES_FILE
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            tokens = line.split()
            reason = _check_line(tokens, seen_users, catalog_rows)
            if reason:
                report.reject(path, line_number, reason, line.rstrip("\n"))
                continue
            seen_users.add(tokens[0])
            pseudonym = pseudonymize(tokens[0])
            if admission is not None and not admission.admits(pseudonym):
                report.withheld_users += 1
                continue
            users.append(pseudonym)
            rows.append(tokens[1:])
            report.loaded += 1
    if not rows:
        raise SchemaError(f"{path}: no usable line ({report.rejected} rejected)")

    interacted = dict.fromkeys(item for row in rows for item in row)
    extra = [item for item in catalog_rows if item not in interacted] if include_uninteracted else []
    items = Vocabulary.from_ids([*interacted, *extra])
    user_vocab = Vocabulary.from_ids(users)
    sequences = Sequences.from_lists(user_vocab.lookup(users), [items.lookup(row) for row in rows])
    dataset = Dataset(
        name=directory.name,
        items=items,
        users=user_vocab,
        sequences=sequences,
        catalog=_catalog_frame(items, catalog_rows),
        user_attributes=_read_users(directory / "users.dat", user_vocab, pseudonymize, report),
    )
    return dataset, report


_GENDERS = {"F": "female", "M": "male"}
_AGES = {"1": "under 18", "18": "18-24", "25": "25-34", "35": "35-44", "45": "45-49", "50": "50-55", "56": "56+"}
_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer", "programmer",
    "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
    "unemployed", "writer",
)  # fmt: skip


def _read_users(
    path: Path, users: Vocabulary, pseudonymize: Callable[[str], str], report: LoadReport
) -> pd.DataFrame | None:
    """GroupLens ``UserID::Gender::Age::Occupation::Zip-code`` as gender / age / occupation labels by user index,
    for the group audit; the zip code is not kept. None without the file; users it lacks get None. A malformed line
    is rejected in ``report`` with its number; a user the sequences do not hold is simply not in the data."""
    if not path.is_file():
        return None
    known: dict[int, tuple[str, str, str]] = {}
    for line_number, line in enumerate(path.read_text(encoding="latin-1").splitlines(), start=1):
        parts = line.split("::")
        if len(parts) != 5:
            report.reject(path, line_number, "expected UserID::Gender::Age::Occupation::Zip-code", line)
            continue
        gender, age = _GENDERS.get(parts[1]), _AGES.get(parts[2])
        occupation = _OCCUPATIONS[int(parts[3])] if parts[3].isdigit() and int(parts[3]) < len(_OCCUPATIONS) else None
        if gender is None or age is None or occupation is None:
            report.reject(path, line_number, "gender, age or occupation is not a GroupLens code", line)
            continue
        if (pseudonym := pseudonymize(parts[0])) in users:
            known[users.index(pseudonym)] = (gender, age, occupation)
    index = pd.RangeIndex(1, len(users) + 1, name="user_index")
    frame = pd.DataFrame.from_dict(known, orient="index", columns=list(USER_ATTRIBUTES), dtype=object).reindex(index)
    return frame.astype(object).where(frame.notna(), None)


def _check_line(tokens: list[str], seen_users: set[str], catalog: dict[str, dict[str, object]]) -> str:
    if not tokens:
        return "empty line"
    if len(tokens) < 2:
        return "user has no items"
    if tokens[0] in seen_users:
        return f"duplicate user {tokens[0]!r} (first line kept)"
    if catalog:
        unknown = [item for item in tokens[1:] if item not in catalog]
        if unknown:
            return f"unknown item {unknown[0]!r}" + (f" (+{len(unknown) - 1} more)" if len(unknown) > 1 else "")
    return ""


def _read_item_text(directory: Path) -> dict[str, dict[str, object]]:
    """Raw item id -> catalog fields, from whichever item file the folder has (none is fine)."""
    if (directory / "items.jsonl.gz").is_file():
        with gzip.open(directory / "items.jsonl.gz", "rt", encoding="utf-8") as handle:
            return {str(record["item_id"]): _amazon_fields(record) for record in map(json.loads, handle)}
    if (directory / "movies.dat").is_file():
        return _read_movies(directory / "movies.dat")
    return {}


def _amazon_fields(record: dict[str, object]) -> dict[str, object]:
    """S3Rec/P5 records carry ``title`` + ``categories``; UniSRec records one ``text`` = "title. cats. brand. "."""
    fields: dict[str, object] = {}
    if isinstance(record.get("title"), str):
        fields["title"] = html.unescape(str(record["title"]))
    categories = record.get("categories")
    if isinstance(categories, list) and categories and isinstance(categories[0], list):
        fields["category"] = " > ".join(html.unescape(str(part)) for part in categories[0])
    if isinstance(record.get("text"), str):
        text = html.unescape(str(record["text"])).strip()
        fields["description"] = text
        fields.setdefault("title", text.split(". ", 1)[0])
        title_and_categories, _, brand = text.rstrip(". ").rpartition(". ")  # the brand is the last sentence
        if title_and_categories and brand.strip():
            fields["brand"] = brand.strip()
    return fields


def _read_movies(path: Path) -> dict[str, dict[str, object]]:
    """GroupLens ``MovieID::Title (Year)::Genre|Genre`` in latin-1."""
    movies: dict[str, dict[str, object]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        parts = line.split("::")
        if len(parts) == 3:
            genres = parts[2].split("|")
            movies[parts[0]] = {"title": parts[1], "category": genres[0], "tags": genres}
    return movies


def _catalog_frame(items: Vocabulary, rows: dict[str, dict[str, object]]) -> pd.DataFrame:
    catalog = empty_catalog(len(items))
    for column in CATALOG_COLUMNS:
        values = [rows.get(raw, {}).get(column) for raw in items.ids]
        if any(value is not None for value in values):
            catalog[column] = pd.Series(values, index=catalog.index, dtype=object)
    return catalog


def interactions_per_item(dataset: Dataset) -> np.ndarray:
    """(n_items + 1,) interaction counts by item index; index 0 (padding) is 0."""
    return np.bincount(dataset.sequences.items, minlength=dataset.items.size)
