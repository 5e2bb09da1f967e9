from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shoprec.data.dataset import Dataset, empty_catalog
from shoprec.encoders.item_text import cap_text, catalog_texts, item_text

FULL = {
    "title": "Red  Nail\tPolish",
    "description": "A glossy, quick-drying lacquer.",
    "category": "Beauty > Makeup > Nails",
    "brand": "OPI",
    "price": 9.5,
    "tags": ["red", " gloss "],
    "reviews": ["Lasts a week.", "Great colour"],
}


def test_fields_in_order_joined_with_full_stops_and_whitespace_collapsed() -> None:
    assert item_text(FULL) == (
        "Red Nail Polish. Beauty > Makeup > Nails. OPI. A glossy, quick-drying lacquer. red, gloss. "
        "Lasts a week. Great colour"
    )


def test_missing_fields_are_skipped_and_price_never_appears() -> None:
    fields = {"title": "Shampoo", "brand": None, "description": float("nan"), "tags": [], "price": 3.0}
    assert item_text(fields) == "Shampoo"
    assert item_text({"category": ["Beauty", "Hair Care"], "reviews": np.array(["Nice"])}) == (
        "Beauty > Hair Care. Nice"
    )


def test_an_item_without_text_gives_the_empty_string() -> None:
    assert item_text({}) == ""
    assert item_text({"title": "   ", "tags": [""], "price": 4.0}) == ""


def test_a_field_repeated_inside_another_appears_once() -> None:
    fields = {"title": "Argan Shampoo", "description": "Argan Shampoo. Beauty > Hair. Brand X", "brand": "Brand X"}
    assert item_text(fields) == "Argan Shampoo. Beauty > Hair. Brand X"
    assert item_text({"title": "Soap", "brand": "Soap"}) == "Soap"


def test_cap_cuts_at_a_word_boundary() -> None:
    assert item_text(FULL, max_chars=30) == "Red Nail Polish. Beauty"  # not "... Beauty > Make"
    assert cap_text("alpha beta gamma", 10) == "alpha beta"
    assert cap_text("alpha beta gamma", 12) == "alpha beta"
    assert cap_text("supercalifragilistic", 5) == "super"  # one longer word is cut hard
    with pytest.raises(ValueError, match="max_chars"):
        item_text(FULL, max_chars=0)


def test_catalog_texts_follow_row_order() -> None:
    catalog = empty_catalog(3)
    catalog["title"] = pd.Series(["first", None, "third"], index=catalog.index, dtype=object)
    catalog["tags"] = pd.Series([None, ["solo"], None], index=catalog.index, dtype=object)
    assert catalog_texts(catalog) == ["first", "solo", "third"]


def test_real_catalog_gives_one_capped_text_per_item(beauty: Dataset) -> None:
    texts = catalog_texts(beauty.catalog, max_chars=64)
    assert len(texts) == beauty.n_items
    assert all(0 < len(text) <= 64 for text in texts)  # every Beauty item has at least a category
    full = catalog_texts(beauty.catalog.head(200))
    assert all(f.startswith(t) for f, t in zip(full, texts, strict=False))
    assert texts[0].startswith(beauty.title(1)[:20])
    assert "&amp;" not in " ".join(texts)
