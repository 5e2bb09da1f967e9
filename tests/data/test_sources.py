"""load_source: one entry point for every supported layout, with rejects written beside the input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoprec.data.rejects import SchemaError
from shoprec.data.sources import load_source
from shoprec.privacy.pseudonym import Pseudonymizer

CATALOG = '{"item_id": "a", "title": "Apple"}\n{"item_id": "b", "title": "Banana"}\n{"item_id": "c"}\n'
EVENTS = "user_id,item_id,timestamp\nu1,a,10\nu1,zzz,11\nu1,b,12\nu2,b,oops\nu2,a,13\n"


def shop(tmp_path: Path, events: str = EVENTS, catalog: str | None = CATALOG) -> Path:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "events.csv").write_text(events)
    if catalog is not None:
        (folder / "catalog.jsonl").write_text(catalog)
    return folder


def test_folder_with_catalog_rejects_unknown_items_and_writes_rejects(
    tmp_path: Path, pseudonymize: Pseudonymizer
) -> None:
    folder = shop(tmp_path)
    dataset, report = load_source(folder, pseudonymize)

    assert dataset.name == "shop"
    assert dataset.items.ids == ("a", "b", "c")  # catalog items stay, even never-seen "c"
    assert [dataset.items.ids_of(row) for row in dataset.sequences.rows()] == [["a", "b"], ["a"]]
    assert report.loaded == 3 + 3
    written = [json.loads(line) for line in (folder / "shop.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in written] == [(3, "unknown item 'zzz'"), (5, "bad timestamp")]
    assert written[0]["file"] == str(folder / "events.csv") and written[0]["raw"] == "u1,zzz,11"


def test_single_events_file_and_explicit_rejects_path(tmp_path: Path, pseudonymize: Pseudonymizer) -> None:
    events = tmp_path / "clicks.csv"
    events.write_text(EVENTS)
    target = tmp_path / "out" / "bad.jsonl"
    dataset, report = load_source(events, pseudonymize, rejects_path=target)

    assert dataset.name == "clicks"
    assert set(dataset.items.ids) == {"a", "zzz", "b"}  # no catalog: any item is accepted
    assert dataset.catalog["title"].isna().all()
    assert report.rejected == 1 and len(target.read_text().splitlines()) == 1
    assert not (tmp_path / "clicks.rejects.jsonl").exists()


def test_clean_source_writes_no_rejects_file(tmp_path: Path, pseudonymize: Pseudonymizer) -> None:
    folder = shop(tmp_path, events="user_id,item_id\nu1,a\nu1,b\n")
    _, report = load_source(folder, pseudonymize)
    assert report.rejected == 0
    assert not list(folder.glob("*.rejects.jsonl"))


def test_benchmark_folder_is_dispatched_to_the_benchmark_reader(beauty_dir: Path, pseudonymize: Pseudonymizer) -> None:
    dataset, report = load_source(beauty_dir, pseudonymize)
    assert dataset.n_users == 2000 and report.rejected == 0


def test_nothing_usable_raises_after_writing_rejects(tmp_path: Path, pseudonymize: Pseudonymizer) -> None:
    folder = shop(tmp_path, events="user_id,item_id\nu1,zzz\n,a\n")
    with pytest.raises(SchemaError, match="no usable event"):
        load_source(folder, pseudonymize)
    assert len((folder / "shop.rejects.jsonl").read_text().splitlines()) == 2


def test_unreadable_layouts_say_what_is_expected(tmp_path: Path, pseudonymize: Pseudonymizer) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SchemaError, match="events"):
        load_source(tmp_path / "empty", pseudonymize)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SchemaError, match="expected"):
        load_source(tmp_path / "notes.txt", pseudonymize)
    folder = shop(tmp_path)
    (folder / "events.jsonl").write_text("")
    with pytest.raises(SchemaError, match="several events files"):
        load_source(folder, pseudonymize)
