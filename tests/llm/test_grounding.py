"""The checks on what a model writes about items, on crafted text: ids, product terms, numbers, language."""

from __future__ import annotations

from shoprec.llm.answer import language_of
from shoprec.llm.grounding import ClaimChecker, Evidence, item_evidence, numbers, sentences
from shoprec.llm.prompts.context import ItemFacts

OPI = ItemFacts(
    item_id="B004756YJA",
    title="OPI Nail Lacquer, Simmer and Shimmer, 0.5-Fluid Ounce",
    category="Beauty > Makeup > Nails > Nail Polish",
    brand="OPI",
    price=12.99,
)
SHOWN = [OPI.title, "Essie Nail Polish, Ballet Slippers", "Agadir Argan Oil Daily Moisturizing Shampoo, 12.4 Ounce"]
CHECKER = ClaimChecker.of(SHOWN, ["OPI", "Essie", "Nail Polish", "Shampoos"])


def test_sentences_and_numbers_read_english_and_chinese() -> None:
    assert sentences("A fine polish. It costs $12.99! 很亮。真的\nnext") == [
        "A fine polish.",
        "It costs $12.99!",
        "很亮。",
        "真的",
        "next",
    ]
    assert numbers("$12.99, a 0.5-Fluid Ounce bottle, 3元, 12,5") == {12.99, 0.5, 3.0, 12.5}


def test_a_claim_holds_only_what_the_items_fields_hold() -> None:
    support = item_evidence(OPI)
    kept = CHECKER.check("A shimmering OPI nail lacquer. It costs $12.99, a lovely pick.", support, [OPI.item_id])
    assert kept.unsupported == () and kept.dropped_ids == ()
    wrong = CHECKER.check("It has argan oil. Only $9.99. Like Essie, it lasts.", support, [OPI.item_id])
    assert wrong.text == "" and len(wrong.unsupported) == 3  # a term of another item, a price, another brand
    assert CHECKER.unsupported("Only $9.99.", support) == ("9.99",)
    assert CHECKER.unsupported("这款 Essie 指甲油很亮。", support) == ("essie",)  # Latin names inside Chinese
    assert CHECKER.unsupported("这款指甲油很亮，三种颜色。", support) == ()  # Chinese words are not checked
    assert CHECKER.unsupported("Pick 2 of these.", support) == ()  # small counts state no fact


def test_ids_outside_the_allowed_ones_drop_their_sentence() -> None:
    checked = CHECKER.check(f"Try [{OPI.item_id}]. Or [B00NOTSHOWN] instead.", item_evidence(OPI), [OPI.item_id])
    assert checked.text == f"Try [{OPI.item_id}]." and checked.dropped_ids == ("B00NOTSHOWN",)


def test_evidence_joins_and_reads_prices_as_numbers() -> None:
    joined = Evidence.of("Nail Polish", values=[12.5]) | Evidence.of("Shampoos")
    assert joined.words == {"nail", "polish", "shampoo"} and joined.numbers == {12.5}


def test_the_language_of_a_text_sets_product_names_aside() -> None:
    names = item_evidence(OPI).words
    assert language_of("这款 OPI Nail Lacquer Simmer and Shimmer 很亮", names) == "zh"
    assert language_of("OPI Nail Lacquer", names) is None  # nothing but names
    assert language_of("A good pick, it shimmers.", names) == "en"
    assert language_of("The OPI is a nail lacquer, not a polish.", names) == "en"
