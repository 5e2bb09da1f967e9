"""Catalog and event readers: good rows load, every bad row is reported by line with a reason."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shoprec.data.dataset import CATALOG_COLUMNS
from shoprec.data.readers import EVENT_COLUMNS, build_dataset, read_catalog, read_events
from shoprec.data.rejects import LoadReport, SchemaError
from shoprec.privacy.consent import Admission, ConsentPolicy
from shoprec.privacy.erasure import erasure_tag
from shoprec.privacy.pseudonym import Pseudonymizer

KNOWN_ITEMS = {"a", "b", "c"}

# Line numbers are the file's as a human sees it: the header is line 1.
EVENTS_CSV = """user_id,item_id,event_type,timestamp
alice,a,view,1700000000
alice,b,purchase,2023-11-14T22:13:30Z
,a,view,1700000001
bob,zzz,view,1700000002
bob,a,teleport,1700000003
bob,b,view,yesterday
alice,a,view,1700000000
bob,c,CLICK,1700000004

bob,,view,1700000005
carol,a,cart,1700000006
"""
CSV_REJECTS = {
    4: "missing user_id",
    5: "unknown item 'zzz'",
    6: "unknown event type 'teleport'",
    7: "bad timestamp",
    8: "duplicate of line 2",
    10: "empty line",
    11: "missing item_id",
}

EVENTS_JSONL = "\n".join(
    [
        '{"user_id": "alice", "item_id": "a", "event_type": "view", "timestamp": 1700000000}',
        '{"user_id": "alice", "item_id": "b", "timestamp": "2023-11-14T22:13:30+00:00"}',
        '{"user_id": "alice", "item_id": "a", "timestamp": ',
        '{"user_id": null, "item_id": "a"}',
        '["bob", "a"]',
        '{"user_id": "bob", "item_id": "zzz"}',
        '{"user_id": "bob", "item_id": "a", "event_type": "refund"}',
        '{"user_id": "bob", "item_id": "a", "timestamp": {"at": 5}}',
        '{"user_id": "alice", "item_id": "a", "event_type": "view", "timestamp": 1700000000}',
        '{"user_id": 42, "item_id": "c", "event_type": "Purchase", "timestamp": 1700000009}',
    ]
)
JSONL_REJECTS = {
    3: "not valid JSON",
    4: "missing user_id",
    5: "not a JSON object",
    6: "unknown item 'zzz'",
    7: "unknown event type 'refund'",
    8: "bad timestamp",
    9: "duplicate of line 1",
}


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def reasons_by_line(report: LoadReport) -> dict[int, str]:
    return {reject.line: reject.reason for reject in report.rejects}


def assert_reported(report: LoadReport, expected: dict[int, str]) -> None:
    found = reasons_by_line(report)
    assert sorted(found) == sorted(expected)
    for line, reason in expected.items():
        assert found[line].startswith(reason), (line, found[line])


@pytest.mark.parametrize("name", ["events.csv", "events.csv.gz"])
def test_csv_events_keep_good_rows_and_report_each_bad_one(
    tmp_path: Path, pseudonymize: Pseudonymizer, name: str
) -> None:
    events, report = read_events(write(tmp_path / name, EVENTS_CSV), pseudonymize, KNOWN_ITEMS)

    assert_reported(report, CSV_REJECTS)
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert events["line"].tolist() == [2, 3, 9, 12]
    assert events["item_id"].tolist() == ["a", "b", "c", "a"]
    assert events["event_type"].tolist() == ["view", "purchase", "click", "cart"]
    assert events["timestamp"].tolist() == [1700000000.0, 1700000010.0, 1700000004.0, 1700000006.0]
    assert report.loaded == 4
    assert all(reject.file == str(tmp_path / name) for reject in report.rejects)
    assert next(r.raw for r in report.rejects if r.line == 5) == "bob,zzz,view,1700000002"


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
def test_jsonl_events_keep_good_rows_and_report_each_bad_one(
    tmp_path: Path, pseudonymize: Pseudonymizer, name: str
) -> None:
    events, report = read_events(write(tmp_path / name, EVENTS_JSONL), pseudonymize, KNOWN_ITEMS)

    assert_reported(report, JSONL_REJECTS)
    assert events["line"].tolist() == [1, 2, 10]
    assert events["event_type"].tolist() == ["view", "view", "purchase"]  # the default type is "view"
    assert events["user"].tolist()[2] == pseudonymize("42")  # integer ids are read as text


def test_unknown_items_are_accepted_without_a_catalog(tmp_path: Path, pseudonymize: Pseudonymizer) -> None:
    events, report = read_events(write(tmp_path / "e.csv", EVENTS_CSV), pseudonymize)
    assert 5 not in reasons_by_line(report)
    assert "zzz" in set(events["item_id"])


def test_event_frame_holds_pseudonyms_not_raw_user_ids(tmp_path: Path, pseudonymize: Pseudonymizer) -> None:
    events, _ = read_events(write(tmp_path / "e.csv", EVENTS_CSV), pseudonymize, KNOWN_ITEMS)
    assert set(events["user"]) == {pseudonymize("alice"), pseudonymize("bob"), pseudonymize("carol")}
    assert not events.isin(["alice", "bob", "carol"]).any().any()


def test_quoted_newlines_and_ragged_rows_keep_true_line_numbers(tmp_path: Path, pseudonymize: Pseudonymizer) -> None:
    text = 'user_id,item_id,note\nu1,a,"two\nlines"\nu1,b,x,extra\nu2,,y\nu2,c,z\n'
    events, report = read_events(write(tmp_path / "e.csv", text), pseudonymize)
    assert events["line"].tolist() == [2, 6]
    assert reasons_by_line(report) == {4: "expected 3 fields, found 4", 5: "missing item_id"}


def test_missing_timestamp_column_leaves_nan_and_no_duplicate_check(
    tmp_path: Path, pseudonymize: Pseudonymizer
) -> None:
    """Without a time a repeated row is a repeat event (a second purchase), not a copy."""
    events, report = read_events(write(tmp_path / "e.csv", "user_id,item_id\nu,a\nu,a\n"), pseudonymize)
    assert report.rejected == 0
    assert events["timestamp"].isna().all()
    assert events["event_type"].tolist() == ["view", "view"]


def test_value_column_is_read_as_a_number(tmp_path: Path, pseudonymize: Pseudonymizer) -> None:
    text = "user_id,item_id,event_type,value\nu,a,rating,4.5\nu,b,rating,five\nu,c,rating,\n"
    events, report = read_events(write(tmp_path / "e.csv", text), pseudonymize)
    assert reasons_by_line(report) == {3: "bad value: expected a number"}
    assert events["value"].tolist()[0] == 4.5 and np.isnan(events["value"].tolist()[1])


def test_unknown_format_and_missing_columns_raise_schema_error(tmp_path: Path, pseudonymize: Pseudonymizer) -> None:
    with pytest.raises(SchemaError, match=r"events\.xlsx"):
        read_events(write(tmp_path / "events.xlsx", "x"), pseudonymize)
    with pytest.raises(SchemaError, match="user_id"):
        read_events(write(tmp_path / "e.csv", "customer,item_id\nu,a\n"), pseudonymize)
    with pytest.raises(SchemaError, match="item_id"):
        read_catalog(write(tmp_path / "c.csv", "sku,title\n1,x\n"))


CATALOG_JSONL = "\n".join(
    json.dumps(record)
    for record in [
        {"item_id": "a", "title": " Tom &amp; Jerry &quot;Deluxe&quot; ", "category": ["Beauty", "Makeup"]},
        {"item_id": "b", "title": 7},
        {"item_id": "b", "title": "Brush", "price": 4.5, "tags": "soft, travel", "reviews": "Great &lt;3"},
        {"item_id": "c", "price": -1},
        {"item_id": "c", "price": "cheap"},
        {"item_id": "a", "title": "Again"},
        {"title": "no id"},
        {"item_id": "d", "category": "Beauty > Skin", "reviews": ["ok", "fine"], "brand": "Acme"},
    ]
)


def test_catalog_validates_and_normalises_fields(tmp_path: Path) -> None:
    catalog, report = read_catalog(write(tmp_path / "catalog.jsonl", CATALOG_JSONL))

    assert reasons_by_line(report) == {
        2: "title must be text",
        4: "bad price: expected a number >= 0",
        5: "bad price: expected a number >= 0",
        6: "duplicate item_id 'a' (first on line 1)",
        7: "missing item_id",
    }
    assert list(catalog.index) == ["a", "b", "d"]
    assert list(catalog.columns) == list(CATALOG_COLUMNS)
    assert catalog.at["a", "title"] == 'Tom & Jerry "Deluxe"'
    assert catalog.at["a", "category"] == "Beauty > Makeup"
    assert catalog.at["b", "price"] == 4.5
    assert catalog.at["b", "tags"] == ["soft", "travel"]
    assert catalog.at["b", "reviews"] == ["Great <3"]
    assert catalog.at["d", "reviews"] == ["ok", "fine"]
    assert catalog.at["d", "category"] == "Beauty > Skin"
    assert catalog.at["a", "price"] is None and catalog.at["a", "description"] is None


def test_csv_catalog_accepts_json_lists_and_reports_the_first_duplicate(tmp_path: Path) -> None:
    text = (
        "item_id,title,category,price,tags\n"
        'x1,Caf&eacute;,"[""Home"", ""Kitchen""]",3,"[""a"", ""b""]"\n'
        "x2,Mug,Home > Kitchen,,\n"
        "x1,Copy,,1,\n"
        "x3,Pan,,-2,\n"
    )
    catalog, report = read_catalog(write(tmp_path / "catalog.csv", text))
    assert reasons_by_line(report) == {
        4: "duplicate item_id 'x1' (first on line 2)",
        5: "bad price: expected a number >= 0",
    }
    assert catalog.at["x1", "title"] == "Café"
    assert catalog.at["x1", "category"] == catalog.at["x2", "category"] == "Home > Kitchen"
    assert catalog.at["x1", "tags"] == ["a", "b"]
    assert catalog.at["x1", "price"] == 3.0 and catalog.at["x2", "price"] is None


def test_parquet_round_trip(tmp_path: Path, pseudonymize: Pseudonymizer) -> None:
    pd.DataFrame(
        {
            "item_id": [1, 2],
            "title": ["A &amp; B", None],
            "tags": [["x", "y"], None],
            "price": [1.5, None],
        }
    ).to_parquet(tmp_path / "catalog.parquet")
    stamps = pd.to_datetime(["2024-01-01T00:00:00Z", "2024-01-01T00:00:10Z", None])
    pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["2", "1", "1"], "timestamp": stamps}).to_parquet(
        tmp_path / "events.parquet"
    )

    catalog, catalog_report = read_catalog(tmp_path / "catalog.parquet")
    events, events_report = read_events(tmp_path / "events.parquet", pseudonymize, set(catalog.index))

    assert catalog_report.rejected == events_report.rejected == 0
    assert list(catalog.index) == ["1", "2"]
    assert catalog.at["1", "title"] == "A & B" and catalog.at["1", "tags"] == ["x", "y"]
    assert events["line"].tolist() == [1, 2, 3]
    assert events["timestamp"].tolist()[:2] == [1704067200.0, 1704067210.0]
    assert np.isnan(events["timestamp"].iloc[2])


def events_frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    users, items, stamps = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "user": users,
            "item_id": items,
            "event_type": ["view"] * len(rows),
            "timestamp": np.asarray(stamps, dtype=np.float64),
            "value": np.nan,
            "line": np.arange(2, len(rows) + 2),
        }
    )


def test_build_dataset_orders_each_user_by_time_keeping_file_order_for_ties() -> None:
    events = events_frame([("u", "c", 30.0), ("v", "a", 5.0), ("u", "a", 10.0), ("u", "b", 30.0), ("u", "d", 20.0)])
    dataset = build_dataset("shop", events)

    rows = [dataset.items.ids_of(row) for row in dataset.sequences.rows()]
    assert rows == [["a", "d", "c", "b"], ["a"]]  # c and b share time 30: file order
    assert dataset.sequences.timestamps is not None
    assert dataset.sequences.timestamps.tolist() == [10.0, 20.0, 30.0, 30.0, 5.0]
    assert dataset.users.ids == ("u", "v")


def test_build_dataset_keeps_file_order_without_timestamps() -> None:
    events = events_frame([("u", "c", np.nan), ("u", "a", np.nan), ("u", "b", np.nan)])
    dataset = build_dataset("shop", events)
    assert dataset.items.ids_of(dataset.sequences.row(0)) == ["c", "a", "b"]
    assert dataset.sequences.timestamps is None


def test_build_dataset_puts_catalog_items_first_and_indexes_the_catalog(tmp_path: Path) -> None:
    catalog, _ = read_catalog(write(tmp_path / "c.jsonl", '{"item_id": "z", "title": "Zed"}\n{"item_id": "y"}'))
    events = events_frame([("u", "new", 1.0), ("u", "z", 2.0)])
    dataset = build_dataset("shop", events, catalog)

    assert dataset.items.ids == ("z", "y", "new")
    assert list(dataset.catalog.index) == [1, 2, 3]
    assert dataset.title(1) == "Zed" and dataset.title(3) == "new"
    assert dataset.catalog.at[3, "title"] is None
    assert dataset.event_types is not None and dataset.event_types.tolist() == ["view", "view"]


def test_timestamps_written_with_a_utc_suffix_are_read(tmp_path: Path, pseudonymize: Pseudonymizer) -> None:
    """REES46 and other store exports write "2019-10-01 00:00:07 UTC"; every one of those rows was rejected."""
    rows = "\n".join(
        [
            "user_id,item_id,event_type,timestamp",
            "u1,a,view,2019-10-01 00:00:07 UTC",
            "u1,b,view,2019-10-01 00:00:09 GMT",
            "u1,c,view,2019-10-01 00:00:11 PST",
        ]
    )
    events, report = read_events(write(tmp_path / "e.csv", rows + "\n"), pseudonymize, KNOWN_ITEMS)
    assert events["timestamp"].tolist() == [1569888007.0, 1569888009.0]
    assert_reported(report, {4: "bad timestamp"})  # a zone name other than UTC/GMT is not guessed


CONSENT_CSV = """user_id,item_id,timestamp,consent
alice,a,1700000003,no
alice,b,1700000001,yes
bob,a,1700000000,true
bob,b,1700000005,
carol,a,1700000000,
carol,c,1700000001,
dave,a,1700000000,maybe
dave,b,1700000001,false
erin,c,,yes
erin,a,1700000000,no
"""


def test_consent_column_leaves_out_users_whose_latest_stated_answer_is_no(
    tmp_path: Path, pseudonymize: Pseudonymizer
) -> None:
    """alice said yes, then (later in time, earlier in the file) no; bob said yes; carol never said; dave's
    answers are a typo (rejected by line) and then no; erin's untimed yes comes after her timed no."""
    path = tmp_path / "events.csv"
    path.write_text(CONSENT_CSV)
    events, report = read_events(path, pseudonymize)
    kept = {pseudonymize(user): user for user in ("alice", "bob", "carol", "dave", "erin")}
    assert sorted(kept[user] for user in set(events["user"])) == ["bob", "carol", "erin"]
    assert [(r.line, r.reason) for r in report.rejects] == [(8, "bad consent: expected true or false")]
    assert (report.withheld_users, report.loaded) == (2, 6)


def test_admission_applies_the_policy_the_stores_answers_and_erasures(
    tmp_path: Path, pseudonymize: Pseudonymizer
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(CONSENT_CSV)

    def users(admission: Admission) -> list[str]:
        events, _ = read_events(path, pseudonymize, admission=admission)
        named = {pseudonymize(u): u for u in ("alice", "bob", "carol", "dave", "erin")}
        return sorted(named[user] for user in set(events["user"]))

    opt_in = ConsentPolicy(required=True)
    assert users(Admission(opt_in)) == ["bob", "erin"]  # carol never said yes
    assert users(Admission(recorded={pseudonymize("alice"): True, pseudonymize("bob"): False})) == [
        "alice",
        "carol",
        "erin",
    ]  # the store's answer, given through the API, wins over the file's
    assert users(Admission(erased=frozenset({erasure_tag(pseudonymize("carol"))}))) == ["bob", "erin"]
