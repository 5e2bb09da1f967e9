"""Catalog fields -> the one text an encoder sees for an item.

The most telling fields come first (title, category path, brand), so the length cap, which encoders need to bound
their cost, cuts the long tail of description, tags and reviews rather than the name of the product.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

SEPARATOR = ". "
_CLOSERS = (".", "!", "?")  # a part already ending a sentence gets no extra full stop
# Field -> how the parts of a list value are joined; fields not listed here (e.g. price) never reach the text.
FIELD_JOINERS: dict[str, str] = {
    "title": " ",
    "category": " > ",
    "brand": " ",
    "description": " ",
    "tags": ", ",
    "reviews": SEPARATOR,
}


def _collapse(value: object) -> str:
    """Text with runs of whitespace collapsed; missing values (None, NaN) give ""."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return " ".join(str(value).split())


def _join(parts: list[str], joiner: str) -> str:
    """Non-empty parts joined; with SEPARATOR, a part's own closing punctuation is not doubled."""
    parts = [part for part in parts if part]
    if joiner != SEPARATOR:
        return joiner.join(parts)
    return " ".join([*(p if p.endswith(_CLOSERS) else p + "." for p in parts[:-1]), *parts[-1:]])


def _field_text(value: object, joiner: str) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return _join([_collapse(part) for part in value], joiner)
    return _collapse(value)


def _drop_repeats(parts: list[str]) -> list[str]:
    """Some sources repeat fields inside another (a description that begins with the title): keep the longer."""
    kept: list[str] = []
    for i, part in enumerate(parts):
        inside_other = any(part in other and (part != other or j < i) for j, other in enumerate(parts) if j != i)
        if not inside_other:
            kept.append(part)
    return kept


def cap_text(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters, cut at the last word boundary (a single longer word is cut hard)."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    if text[max_chars] != " ":
        space = head.rfind(" ")
        head = head[:space] if space > 0 else head
    return head.rstrip(" .,;:>")


def item_text(fields: Mapping[str, object], max_chars: int = 512) -> str:
    """Title, category path, brand, description, tags and reviews where present, joined with ". "."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    parts = [_field_text(fields.get(name), joiner) for name, joiner in FIELD_JOINERS.items()]
    return cap_text(_join(_drop_repeats([part for part in parts if part]), SEPARATOR), max_chars)


def catalog_texts(catalog: pd.DataFrame, max_chars: int = 512) -> list[str]:
    """One text per catalog row, in row order (row i = item index i + 1); an item without text gives ""."""
    columns = [name for name in FIELD_JOINERS if name in catalog.columns]
    records = catalog[columns].to_dict("records")
    return [item_text({str(k): v for k, v in record.items()}, max_chars) for record in records]
