"""Query parsing: price bounds in English and Chinese come out of the text, category names are recognised, and
numbers that are not prices stay where they are."""

from __future__ import annotations

import pytest

from shoprec.serving.query import parse_query

CATEGORIES = ["Beauty", "Makeup", "Nails", "Nail Polish", "Skin Care", "Face", "Hair Care", "Shampoos"]


@pytest.mark.parametrize(
    ("query", "text", "min_price", "max_price"),
    [
        ("nail polish under $20", "nail polish", None, 20),
        ("mascara below 20", "mascara", None, 20),
        ("lipstick for less than 20 dollars", "lipstick", None, 20),
        ("< 20 eyeliner", "eyeliner", None, 20),
        ("shampoo <= 12.5", "shampoo", None, 12.5),
        ("something cheaper than 15 bucks", "something", None, 15),
        ("perfume at most USD 80", "perfume", None, 80),
        ("no more than 30 dollars face cream", "face cream", None, 30),
        ("serum over 50", "serum", 50, None),
        ("above $50 perfume", "perfume", 50, None),
        ("more than 50 dollars", "", 50, None),
        ("> 50", "", 50, None),
        ("not less than 5 bucks", "", 5, None),
        ("hair dryer between 10 and 20", "hair dryer", 10, 20),
        ("$10-$20 lipstick", "lipstick", 10, 20),
        ("shampoo 10 to 20 dollars", "shampoo", 10, 20),
        ("brush between $20 and $10", "brush", 10, 20),
        ("waterproof mascara over 10 under 30", "waterproof mascara", 10, 30),
        ("lip balm priced under $8", "lip balm", None, 8),
        ("mascara under twenty dollars", "mascara", None, 20),  # numbers in words
        ("nail polish max $12", "nail polish", None, 12),
    ],
)
def test_english_price_bounds(query: str, text: str, min_price: float | None, max_price: float | None) -> None:
    parsed = parse_query(query, [])
    assert (parsed.text, parsed.min_price, parsed.max_price) == (text, min_price, max_price)


@pytest.mark.parametrize(
    ("query", "text", "min_price", "max_price"),
    [
        ("低于100元的指甲油", "指甲油", None, 100),
        ("指甲油100元以下", "指甲油", None, 100),
        ("不超过100的面霜", "面霜", None, 100),
        ("少于100块的口红", "口红", None, 100),
        ("洗发水 100以内", "洗发水", None, 100),
        ("高于50元的香水", "香水", 50, None),
        ("香水50元以上", "香水", 50, None),
        ("超过50的精华", "精华", 50, None),
        ("10到20元的睫毛膏", "睫毛膏", 10, 20),
        ("眼线笔10-20元", "眼线笔", 10, 20),
        ("价格在10到20元之间的口红", "口红", 10, 20),
        ("指甲油１００元以下", "指甲油", None, 100),  # full-width digits
        ("两百块以内的口红", "口红", None, 200),  # Chinese numerals
    ],
)
def test_chinese_price_bounds(query: str, text: str, min_price: float | None, max_price: float | None) -> None:
    parsed = parse_query(query, [])
    assert (parsed.text, parsed.min_price, parsed.max_price) == (text, min_price, max_price)


@pytest.mark.parametrize(
    "query",
    [
        "2 pack nail polish",
        "spf 50 sunscreen",
        "sunscreen over 50 spf",
        "shampoo under 12 oz",
        "less than 3 ml sample",
        "top 10 lipsticks",
        "retinol 0.5% serum",
        "set of 12 brushes",
        "$20 lipstick",  # a price, but no bound: neither "at most" nor "at least"
        "100毫升以下的洗面奶",
        "anti-aging cream 2-in-1",
        "nike air max 90",  # a model name, not "at most 90"
    ],
)
def test_numbers_that_are_not_price_bounds_stay_in_the_text(query: str) -> None:
    parsed = parse_query(query, [])
    assert (parsed.min_price, parsed.max_price) == (None, None)
    assert parsed.text == query


def test_a_query_without_constraints_is_unchanged() -> None:
    parsed = parse_query("  gentle   cleanser for oily skin ", CATEGORIES)
    assert parsed.model_dump() == {
        "text": "gentle cleanser for oily skin",
        "min_price": None,
        "max_price": None,
        "categories": [],
    }


def test_category_names_match_whole_words_longest_first() -> None:
    assert parse_query("red nail polish", CATEGORIES).categories == ["Nail Polish"]  # not also "Nails"
    assert parse_query("SKIN CARE for the face", CATEGORIES).categories == ["Skin Care", "Face"]
    assert parse_query("facial nailsalon shampoo", CATEGORIES).categories == []  # parts of words do not count


def test_category_words_stay_in_the_text_and_prices_leave_it() -> None:
    parsed = parse_query("hair care shampoos under $15", CATEGORIES)
    assert parsed.text == "hair care shampoos"
    assert parsed.categories == ["Hair Care", "Shampoos"]
    assert parsed.max_price == 15


def test_an_empty_query_parses_to_nothing() -> None:
    assert parse_query("", CATEGORIES).model_dump() == {
        "text": "",
        "min_price": None,
        "max_price": None,
        "categories": [],
    }
