"""The HTML report from hand-made plain data: the given numbers in the tables, user text escaped, one file."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pytest

from shoprec.evaluation.groups import GroupGap
from shoprec.evaluation.html import (
    Example,
    FeedItem,
    Header,
    Report,
    Tradeoff,
    beyond_columns,
    knob_keys,
    point_label,
    render_report,
    tradeoff_png,
)
from shoprec.evaluation.protocol import EvalResult, SliceResult

EVIL = "<script>alert(1)</script>"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Tables(HTMLParser):
    """Each <table>'s rows as lists of cell texts, by the table's class; and every <img>'s src."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "table":
            self._table = self.tables.setdefault(named.get("class") or "", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(named.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table is not None and self._cell is not None:
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def result() -> EvalResult:
    return EvalResult(
        metrics={"HR@10": 0.1234, "NDCG@10": 0.0567, "HR@20": 0.2345, "Coverage@10": 0.3141, "ExposureTail@10": 0.0123},
        n_users=4321,
        slices=[SliceResult("history_length", "5-9", 17, {"HR@10": 0.4321, "NDCG@10": 0.2109})],
        gaps=[
            GroupGap("history_length", "HR@10", "5-9", "1-4", 0.30, 0.10, 0.20, 0.05, 0.35, 0.95),
            GroupGap("gender", "HR@10", "F", "M", 0.12, 0.11, 0.01, -0.02, 0.04, 0.95),
        ],
    )


def tradeoff(rows: list[dict[str, float]] | None = None) -> Tradeoff:
    rows = rows or [
        {"diversity": value, "seconds": 1.0, "NDCG@10": 0.09 - value / 10, "HR@10": 0.15, "ILD@10": 0.6 + value / 5}
        for value in (0.0, 0.5, 0.9)
    ]
    return Tradeoff("beauty-diversity", rows, "validation split")


def report(title: str = "Lip balm") -> str:
    item = FeedItem(title, "Beauty > Skin Care", ("history 60%: “Hand cream”",), target=True)
    example = Example("user 0123", (title, "Hand cream"), 2, (item,), (FeedItem(title, None, (), new=True),))
    header = Header("amazon_beauty", "sasrec", {"dim": 64, "train": {"epochs": 6}}, "2026-12-07", "abc123", {}, "val")
    return render_report(Report(header, result(), [tradeoff()], [example], {"diversity": 0.5}))


def test_tables_hold_the_given_numbers() -> None:
    parsed = Tables()
    parsed.feed(report())
    metrics = parsed.tables["metrics"]
    assert metrics[0] == ["metric", "@10", "@20"]
    assert ["HR", "0.1234", "0.2345"] in metrics and ["NDCG", "0.0567", ""] in metrics
    assert ["Coverage", "0.3141", ""] in metrics and ["ExposureTail", "0.0123", ""] in metrics
    assert ["ILD", "", ""] not in metrics, "a family the result lacks gets no row"
    assert parsed.tables["slices"][1] == ["history_length", "5-9", "17", "0.4321", "0.2109"]
    assert parsed.tables["gaps"][1][:5] == ["history_length", "HR@10", "5-9 (0.3000)", "1-4 (0.1000)", "0.2000"]
    assert parsed.tables["gaps"][1][5] == "95%: 0.0500 to 0.3500"


def test_a_gap_beyond_noise_says_so_and_a_noisy_one_does_not() -> None:
    parsed = Tables()
    parsed.feed(report())
    header, beyond, noisy = parsed.tables["gaps"]
    assert header[-1] == "beyond noise"
    assert beyond[-1] == "yes" and noisy[-1] == "no"


def test_titles_are_escaped() -> None:
    document = report(EVIL)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in document
    assert "<script" not in document, "no user text becomes markup, and the page has no scripts of its own"


def test_images_are_embedded_and_nothing_points_off_the_file() -> None:
    document = report()
    parsed = Tables()
    parsed.feed(document)
    assert len(parsed.images) == 1
    for source in parsed.images:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]).startswith(PNG_SIGNATURE)
    assert not re.search(r"https?://", document)
    assert "<link" not in document


def test_knobs_are_the_keys_that_are_not_metrics_and_label_every_point() -> None:
    rows = [{"diversity": 0.5, "tail_share": 0.1, "seconds": 3.0, "NDCG@10": 0.08, "HR@10": 0.1, "ILD@10": 0.7}]
    assert knob_keys(rows) == ["diversity", "tail_share"]
    assert beyond_columns(rows) == ["ILD@10"], "accuracy columns are never an x axis"
    assert point_label(rows[0], ["diversity", "tail_share"]) == "diversity 0.5, tail_share 0.1"
    assert point_label(rows[0], ["diversity"]) == "0.5"
    assert tradeoff_png(Tradeoff("grid", rows)).startswith("data:image/png;base64,")


def test_a_tradeoff_without_beyond_accuracy_columns_is_an_error() -> None:
    with pytest.raises(ValueError, match="beyond-accuracy"):
        Tradeoff("accuracy-only", [{"diversity": 0.0, "NDCG@10": 0.1, "HR@10": 0.2}])
