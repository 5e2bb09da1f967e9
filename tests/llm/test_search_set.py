"""The zh/en search set: built the same way for the same seed, halves disjoint by intent, wordings in the language
they claim; and the keyword judge on hand-checked Amazon Beauty items."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from shoprec.llm.intent import detect_language
from shoprec.llm.search_set import INTENTS, Judge, ShopIntent, build_search_set, split_intents

BEAUTY = Path(__file__).resolve().parents[2] / "data" / "amazon_beauty" / "items.jsonl.gz"
JUDGE = Judge()


def test_the_same_seed_builds_the_same_set_and_another_seed_another_split() -> None:
    first = build_search_set(INTENTS, seed=0)
    assert first == build_search_set(INTENTS, seed=0)
    assert split_intents(INTENTS, 0) != split_intents(INTENTS, 1)
    assert [q.text for q in first] == [q.text for q in build_search_set(INTENTS, seed=1)]  # only the split moves


def test_dev_and_test_split_the_intents_in_halves_with_every_wording_in_both_languages() -> None:
    queries = build_search_set(INTENTS, seed=0)
    dev = {q.intent for q in queries if q.split == "dev"}
    test = {q.intent for q in queries if q.split == "test"}
    assert not dev & test and len(dev) == len(test) == len(INTENTS) // 2 >= 10
    for intent in INTENTS:
        for language in ("en", "zh"):
            worded = [q.text for q in queries if q.intent == intent.name and q.language == language]
            assert len(worded) >= 3 and all(detect_language(text) == language for text in worded), worded


def test_repeated_intent_names_are_refused() -> None:
    twice = (INTENTS[0], INTENTS[0])
    with pytest.raises(ValueError, match="distinct"):
        split_intents(twice, 0)
    with pytest.raises(ValueError, match="keyword"):
        Judge((ShopIntent("nothing", (), ("a",), ("甲",)),))


def test_the_judge_reads_titles_and_category_paths_as_whole_words() -> None:
    # Items 1 and 2 of Amazon Beauty, and others as the catalog writes them.
    assert JUDGE.relevant("nail polish", "OPI Nail Lacquer, Simmer and Shimmer, 0.5-Fluid Ounce", None)
    assert JUDGE.relevant(
        "nail polish", "China Glaze Water You Waiting for 1200", "Beauty > Makeup > Nails > Nail Polish"
    )
    assert JUDGE.relevant("shampoo", "Pantene Pro-V", "Beauty > Hair Care > Shampoos")  # plural
    assert JUDGE.relevant("body wash", "Dial Spring Water Body Wash &amp; Shower Gel", None)  # HTML entities
    assert not JUDGE.relevant("curling iron", "Shu Uemura Eyelash Curler", "Beauty > Tools & Accessories")
    assert not JUDGE.relevant("lip gloss", "Goody Claw Clip Gloss Black", "Beauty > Hair Care > Styling Tools")
    assert not JUDGE.relevant("shampoo", "Dry shampooing brush", None)  # a longer word is another word
    assert not JUDGE.relevant("shampoo", None, None)


def test_precision_counts_missing_results_as_misses() -> None:
    found = [("Mascara Waterproof", None), ("Eyeliner", None), ("Lash Blast Mascara", "Beauty > Makeup > Eyes")]
    assert JUDGE.precision("mascara", found, k=10) == pytest.approx(0.2)
    assert JUDGE.precision("mascara", found, k=1) == 1.0
    with pytest.raises(ValueError, match="positive"):
        JUDGE.precision("mascara", found, k=0)


def test_every_intent_has_at_least_thirty_relevant_items_in_the_beauty_catalog() -> None:
    with gzip.open(BEAUTY, "rt", encoding="utf-8") as handle:
        items = [json.loads(line) for line in handle]
    for intent in INTENTS:
        relevant = sum(JUDGE.relevant(intent.name, i["title"], " > ".join(i["categories"][0])) for i in items)
        assert relevant >= 30, (intent.name, relevant)
