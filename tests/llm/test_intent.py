"""Query rules: each slot read from hand-written English and Chinese queries against a catalog's own names, how the
rules and an LLM's reading merge, and how a follow-up refines the previous intent."""

from __future__ import annotations

import pytest

from shoprec.data.dataset import Dataset
from shoprec.llm.intent import Intent, detect_language, intent_schema, merge, parse, refine
from shoprec.llm.prices import parse_prices
from shoprec.llm.terms import CatalogTerms

# Names as the catalogs spell them: Beauty's category levels, REES46-style brands, Chinese product types and brands
# from the Taobao titles.
TERMS = CatalogTerms.of(
    categories=[
        *("Nail Polish", "Nails", "Shampoos", "Conditioners", "Creams & Moisturizers", "Hair Dryers", "Face"),
        *("运动鞋", "鞋", "包", "口红", "面霜", "双肩包", "t恤"),
    ],
    brands=["OPI", "Essie", "Maybelline", "L'Oreal", "dr.ci#labo", "耐克", "阿迪达斯", "迪奥", "李宁", "第五元素"],
)


def slots(query: str) -> dict[str, object]:
    return parse(query, TERMS).model_dump(exclude_defaults=True)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("OPI nail polish under $20", {"category": "Nail Polish", "brand": "OPI", "max_price": 20, "currency": "USD"}),
        ("shampoos less than 15 dollars", {"category": "Shampoos", "max_price": 15, "currency": "USD"}),
        ("shampoo under 20", {"category": "Shampoos", "max_price": 20}),  # no currency word: none guessed
        ("hair dryer cheaper than 40 usd", {"category": "Hair Dryers", "max_price": 40, "currency": "USD"}),
        (
            "creams and moisturizers between $10 and $25",
            {"category": "Creams & Moisturizers", "min_price": 10, "max_price": 25, "currency": "USD"},
        ),
        ("maybelline over fifty bucks", {"brand": "Maybelline", "min_price": 50, "currency": "USD"}),
        ("cheapest l'oreal conditioner", {"category": "Conditioners", "brand": "L'Oreal", "sort": "price_asc"}),
        ("most expensive face cream", {"category": "Face", "sort": "price_desc"}),
        ("nail polish, not OPI", {"category": "Nail Polish", "exclude_brands": ["OPI"]}),
        ("nail polish no OPI or Essie", {"category": "Nail Polish", "exclude_brands": ["OPI", "Essie"]}),
        ("conditioner except Maybelline", {"category": "Conditioners", "exclude_brands": ["Maybelline"]}),
        ("Essie but no nails", {"brand": "Essie", "exclude_categories": ["Nails"]}),
        ("2 pack nail polish spf 50", {"category": "Nail Polish"}),  # counts and SPF are not prices
        ("nail polish max $12", {"category": "Nail Polish", "max_price": 12, "currency": "USD"}),
        ("hair dryer over 50 under 20", {"category": "Hair Dryers", "min_price": 20, "max_price": 50}),  # swapped
    ],
)
def test_english_queries(query: str, expected: dict[str, object]) -> None:
    assert slots(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("耐克的运动鞋20元以下", {"category": "运动鞋", "brand": "耐克", "max_price": 20, "currency": "CNY"}),
        ("口红100-200元", {"category": "口红", "min_price": 100, "max_price": 200, "currency": "CNY"}),
        ("不超过50块的面霜", {"category": "面霜", "max_price": 50, "currency": "CNY"}),
        ("面霜50块以内", {"category": "面霜", "max_price": 50, "currency": "CNY"}),
        ("两百块以内的双肩包", {"category": "双肩包", "max_price": 200, "currency": "CNY"}),
        ("李宁t恤 rmb 80 以下", {"category": "t恤", "brand": "李宁", "max_price": 80, "currency": "CNY"}),
        ("最便宜的口红", {"category": "口红", "sort": "price_asc"}),
        ("运动鞋，不要耐克", {"category": "运动鞋", "exclude_brands": ["耐克"]}),
        ("除了耐克和阿迪达斯的运动鞋", {"category": "运动鞋", "exclude_brands": ["耐克", "阿迪达斯"]}),
        ("迪奥的不要，口红", {"category": "口红", "exclude_brands": ["迪奥"]}),
        ("t恤，第五元素除外", {"category": "t恤", "exclude_brands": ["第五元素"]}),  # "五元" is no price here
        ("dr.ci#labo 面霜", {"category": "面霜", "brand": "dr.ci#labo"}),
        ("鞋 包邮", {"category": "鞋"}),  # "包" of "包邮" (free shipping) is no bag
        ("300美元以下的运动鞋", {"category": "运动鞋", "max_price": 300, "currency": "USD"}),  # 美元 is no 元
        ("口红，不超过20美金", {"category": "口红", "max_price": 20, "currency": "USD"}),
    ],
)
def test_chinese_queries(query: str, expected: dict[str, object]) -> None:
    assert slots(query) == {**expected, "language": "zh"}


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("nail polish", "en"),
        ("指甲油", "zh"),
        ("nike air max 运动鞋", "zh"),  # a Latin name inside Chinese
        ("dr.ci#labo 面霜", "zh"),
        ("nail polish by OPI, no 迪奥", "en"),  # a Chinese name inside English
        ("", "en"),
    ],
)
def test_language_is_the_share_of_chinese_characters(text: str, language: str) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize("query", ["nike air max 90 运动鞋", "iphone 11 pro max 256", "3 pack under 5 years"])
def test_model_names_and_measures_are_no_prices(query: str) -> None:
    prices = parse_prices(query)
    assert (prices.min_price, prices.max_price) == (None, None)


def test_price_phrases_leave_the_rest_of_the_text() -> None:
    assert parse_prices("价格在10到20元之间的口红").text == "口红"
    assert parse_prices("lip balm priced under $8").text == "lip balm"
    assert parse_prices("三星手机五百元以下").text == "三星手机"  # "三" of 三星 (Samsung) is no number


def test_terms_come_from_the_catalog(beauty: Dataset) -> None:
    terms = CatalogTerms.of_dataset(beauty)
    assert "Nail Polish" in terms.categories and "Beauty" not in terms.categories  # the root names no type
    assert parse("nail polishes under $10", terms).category == "Nail Polish"


def test_the_schema_requires_every_slot() -> None:
    schema = intent_schema()
    assert set(schema["required"]) == set(Intent.model_fields)
    assert schema["additionalProperties"] is False
    with pytest.raises(ValueError, match="above max_price"):
        Intent(min_price=30, max_price=20)


def test_merge_keeps_the_rules_language_prices_and_order_and_takes_only_supported_llm_slots() -> None:
    query = "不超过100元的口红"
    llm = Intent(category="lipstick", brand="迪奥", max_price=80, currency="USD", sort="price_asc", language="en")
    merged = merge(parse(query, TERMS), llm.model_copy(update={"attributes": ["红色"]}), query, TERMS)
    assert (merged.language, merged.max_price, merged.currency, merged.sort) == ("zh", 100, "CNY", None)
    assert (merged.category, merged.attributes) == ("口红", ["红色"])
    assert merged.brand is None  # a catalog brand, but the query does not name it


def test_merge_takes_an_llm_category_only_as_a_catalog_name() -> None:
    query = "something to paint my fingers with"
    rules = parse(query, TERMS)
    assert rules.category is None
    assert merge(rules, Intent(category="nail polish"), query, TERMS).category == "Nail Polish"  # catalog spelling
    assert merge(rules, Intent(category="electronics"), query, TERMS).category is None
    assert merge(rules, Intent(category="null"), query, TERMS).category is None


def test_merge_takes_an_llm_brand_or_exclusion_only_when_the_query_writes_it() -> None:
    """What the 1.5B model did on the measured queries: a product word or a prompt's catalog name as the brand."""
    query = "gel polish by essie, nothing from maybelline"
    written = merge(Intent(), Intent(brand="ESSIE", exclude_brands=["Maybelline", "OPI"]), query, TERMS)
    assert (written.brand, written.exclude_brands) == ("Essie", ["Maybelline"])
    for brand in ("拖鞋", "L'Oreal", "无"):
        assert merge(parse("拖鞋", TERMS), Intent(brand=brand), "拖鞋", TERMS).brand is None


def test_merge_takes_the_llms_prices_only_when_the_rules_found_none() -> None:
    llm = Intent(min_price=20, max_price=40, currency="USD")
    query = "lipstick twenty to forty"
    assert merge(parse(query, TERMS), llm, query, TERMS).max_price == 40  # the rules read no bound here
    mixed = merge(parse("lipstick over $30", TERMS), Intent(max_price=20), "lipstick over $30", TERMS)
    assert (mixed.min_price, mixed.max_price) == (30, None)  # no bound of the LLM's joins the rules' ones


def test_merge_never_asks_for_a_brand_the_rules_exclude() -> None:
    query = "nail polish not OPI"
    merged = merge(parse(query, TERMS), Intent(brand="OPI", exclude_brands=["Essie"]), query, TERMS)
    assert (merged.brand, merged.exclude_brands, merged.category) == (None, ["OPI"], "Nail Polish")


def test_merge_never_excludes_what_the_rules_read_as_asked_for() -> None:
    """SmolLM2 put the product type asked for among the exclusions; the merge used to drop the request."""
    query = "OPI nail polish"
    merged = merge(
        parse(query, TERMS), Intent(exclude_categories=["nail polish"], exclude_brands=["OPI"]), query, TERMS
    )
    assert (merged.category, merged.brand, merged.exclude_categories, merged.exclude_brands) == (
        "Nail Polish",
        "OPI",
        [],
        [],
    )


def test_cheaper_caps_the_price_at_the_cheapest_item_shown() -> None:
    previous = parse("OPI nail polish under $20", TERMS)
    assert refine(previous, "cheaper", TERMS, shown_prices=[12.5, 18.0]).max_price == 12.5
    assert refine(previous, "更便宜的", TERMS, shown_prices=[12.5]).max_price == 12.5
    unpriced = refine(previous, "cheaper please", TERMS)
    assert (unpriced.max_price, unpriced.sort) == (20, "price_asc")  # nothing priced was shown: order by price
    assert refine(previous, "more expensive", TERMS, shown_prices=[12.5, 18.0]).min_price == 18.0


def test_not_that_brand_excludes_the_brand_asked_for_or_else_the_brands_shown() -> None:
    previous = parse("OPI nail polish under $20", TERMS)
    other = refine(previous, "not that brand", TERMS)
    assert (other.brand, other.exclude_brands, other.category, other.max_price) == (None, ["OPI"], "Nail Polish", 20)
    shown = refine(parse("口红", TERMS), "换个牌子", TERMS, shown_brands=["迪奥", "Maybelline"])
    assert shown.exclude_brands == ["迪奥", "Maybelline"] and shown.language == "zh"


def test_a_follow_up_replaces_what_it_states_and_keeps_the_rest() -> None:
    previous = parse("运动鞋，不要耐克，500元以下", TERMS)
    follow = refine(previous, "阿迪达斯的", TERMS)
    assert (follow.category, follow.brand, follow.max_price, follow.exclude_brands) == (
        "运动鞋",
        "阿迪达斯",
        500,
        ["耐克"],
    )
    back = refine(previous, "耐克的也行", TERMS)
    assert back.brand == "耐克" and back.exclude_brands == []  # asked for again: no longer excluded
    dropped = refine(parse("耐克的运动鞋", TERMS), "不要耐克", TERMS)
    assert dropped.brand is None and dropped.exclude_brands == ["耐克"]  # newly excluded: no longer asked for
    floor = refine(parse("shampoo under $10", TERMS), "over $30", TERMS)
    assert (floor.min_price, floor.max_price) == (30, None)  # a floor above the old cap replaces the cap
