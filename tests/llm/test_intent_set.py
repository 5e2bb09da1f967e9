"""The labelled query set: written the same way for the same seed, dev and test phrasings disjoint, labels that the
query states; and slot accuracy scored as exact matches."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from shoprec.llm.intent import Intent, parse
from shoprec.llm.intent_eval import evaluate, sample, score
from shoprec.llm.intent_set import PHRASINGS, Labelled, build_intent_set, in_words, read_jsonl, write_jsonl
from shoprec.llm.intent_sources import (
    Product,
    Source,
    read_amazon_beauty,
    read_amazon_scientific,
    read_rees46,
    read_zh_titles,
)
from shoprec.llm.terms import CatalogTerms

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / "tests" / "fixtures"  # slices of ../shared/data (tests/fixtures/README.md)


@pytest.fixture(scope="module")
def sources() -> list[Source]:
    """Each real catalog cut to its first 300 products (the vocabulary stays whole: it is what a parser knows)."""
    full = [
        read_amazon_beauty(REPO / "data" / "amazon_beauty"),
        read_amazon_scientific(REPO / "data" / "amazon_scientific"),
        read_rees46(SHARED / "rees46_sample" / "2019-Oct-head.csv"),
        read_zh_titles(SHARED / "zh_product_titles"),
    ]
    return [replace(source, products=source.products[:300]) for source in full]


def test_the_same_seed_writes_the_same_set(sources: list[Source], tmp_path: Path) -> None:
    first = build_intent_set(sources, "dev", 60, seed=3)
    assert [row.to_json() for row in first] == [row.to_json() for row in build_intent_set(sources, "dev", 60, 3)]
    assert [row.query for row in first] != [row.query for row in build_intent_set(sources, "dev", 60, seed=4)]
    write_jsonl(first, tmp_path / "dev.jsonl")
    assert [row.to_json() for row in read_jsonl(tmp_path / "dev.jsonl")] == [row.to_json() for row in first]


def test_each_language_gets_its_rows_from_its_own_catalogs(sources: list[Source]) -> None:
    rows = build_intent_set(sources, "test", 90, seed=0)
    by_language = {lang: [r for r in rows if r.expected.language == lang] for lang in ("en", "zh")}
    assert {lang: len(group) for lang, group in by_language.items()} == {"en": 90, "zh": 90}
    assert {r.source for r in by_language["en"]} == {"amazon_beauty", "amazon_scientific", "rees46_sample"}
    assert {r.source for r in by_language["zh"]} == {"zh_product_titles"}


def test_dev_and_test_share_no_phrasing() -> None:
    for language in ("en", "zh"):
        dev, test = PHRASINGS[(language, "dev")], PHRASINGS[(language, "test")]
        assert not set(dev.frames) & set(test.frames)
        assert not set(dev.products) & set(test.products)
        assert not set(dev.exclusions) & set(test.exclusions)
        for bound in ("max", "min", "range"):
            assert not {t for t, _ in dev.prices[bound]} & {t for t, _ in test.prices[bound]}
        assert not set(dev.orders["asc"] + dev.orders["desc"]) & set(test.orders["asc"] + test.orders["desc"])


def test_dev_and_test_are_written_from_different_items(sources: list[Source]) -> None:
    dev = build_intent_set(sources, "dev", 150, seed=0)
    test = build_intent_set(sources, "test", 150, seed=0)
    named = [{(r.source, r.expected.category, r.expected.brand) for r in rows} for rows in (dev, test)]
    assert len(named[0] & named[1]) < 0.3 * min(map(len, named))  # only products of the same type and brand meet


def test_every_label_is_stated_in_its_query(sources: list[Source]) -> None:
    for row in build_intent_set(sources, "dev", 150, seed=1) + build_intent_set(sources, "test", 150, seed=1):
        query = row.query.lower()
        expected = row.expected
        for name in [expected.brand, *expected.exclude_brands]:
            assert name is None or name.lower() in query, (row.query, name)
        if expected.category and expected.language == "zh":
            assert expected.category in query
        for price in (expected.min_price, expected.max_price):
            assert price is None or f"{price:g}" in query or in_words(price, expected.language) in query


def test_slot_accuracy_is_an_exact_match_per_slot() -> None:
    terms = {"shop": CatalogTerms.of(["Nail Polish"], ["OPI"])}
    rows = [
        Labelled(
            "OPI nail polish under $20",
            "shop",
            "dev",
            "-",
            Intent(category="Nail Polish", brand="OPI", max_price=20, currency="USD"),
        ),
        Labelled("nail polish", "shop", "dev", "-", Intent(category="nail polish")),  # case does not count
        Labelled("no OPI", "shop", "dev", "-", Intent(exclude_brands=["OPI"], max_price=5)),  # one slot wrong
    ]
    scored = evaluate(rows, parse, terms)
    assert scored.per_slot["max_price"] == pytest.approx(2 / 3)
    assert scored.per_slot["brand"] == scored.per_slot["exclude_brands"] == 1.0
    assert scored.exact == pytest.approx(2 / 3)
    assert scored.overall == pytest.approx(1 - 1 / (3 * len(scored.per_slot)))
    nothing = evaluate(rows, lambda query, terms: Intent(), terms)
    assert nothing.per_slot["brand"] == pytest.approx(2 / 3) and nothing.exact == 0.0


def test_names_longer_than_an_intent_slot_are_never_labels() -> None:
    """A real brand of Amazon Scientific runs to 42 characters; the Intent schema holds 40 (NAME_CHARS)."""
    long_brand = "PREMIUM VIALS CREATIVE PACKAGING SOLUTIONS"
    products = tuple(Product("Nail Polish", brand, None) for brand in ("OPI", long_brand) * 10)
    source = Source("shop", "en", products, CatalogTerms.of(["Nail Polish", "Shampoo"], ["OPI", "Essie", long_brand]))
    for split in ("dev", "test"):
        rows = build_intent_set([source], split, 60, seed=0)
        assert len(rows) == 60
        assert all(long_brand not in (row.expected.brand, *row.expected.exclude_brands) for row in rows)


def test_a_sample_takes_the_same_rows_per_language_in_set_order(sources: list[Source]) -> None:
    rows = build_intent_set(sources, "test", 90, seed=0)
    drawn = sample(rows, 20, seed=0)
    assert drawn == sample(rows, 20, seed=0) != sample(rows, 20, seed=1)
    assert [r.expected.language for r in drawn].count("zh") == 20 == len(drawn) - 20
    assert drawn == [r for r in rows if r in drawn]  # set order kept
    assert len(sample(rows, 500, seed=0)) == len(rows)  # a language with fewer rows gives them all
    with pytest.raises(ValueError, match="readings for"):
        score(drawn, [Intent()])
