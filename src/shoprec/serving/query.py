"""Search query -> free text for the encoder plus the constraints it states (price bounds, catalog categories).

An encoder cannot enforce "under $20", so price phrases are read by the query rules of ``llm.prices`` (English and
Chinese, numbers in digits or words) and applied as hard filters; their phrases are cut from the text the encoder
reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from shoprec.llm.prices import parse_prices
from shoprec.ranking.items import ItemIndex
from shoprec.ranking.types import Request
from shoprec.serving.schemas import ParsedQuery


def parse_query(query: str, categories: Iterable[str]) -> ParsedQuery:
    """Price bounds and mentioned ``categories`` (whole words, case-insensitive, longest first) of ``query``.

    Price phrases are removed from the text; category words stay, since they also help the encoder rank.
    """
    prices = parse_prices(query)
    return ParsedQuery(
        text=prices.text,
        min_price=prices.min_price,
        max_price=prices.max_price,
        categories=mentioned_categories(prices.text, categories),
    )


def search_request(
    query: str, k: int, items: ItemIndex, history: np.ndarray | None = None
) -> tuple[Request, ParsedQuery]:
    """The ranking request for a search (and what was read from the query), over ``items``' query categories;
    ``history``: the user's item indices, oldest first (None: anonymous)."""
    parsed = parse_query(query, items.query_categories)
    request = Request(
        np.zeros(0, dtype=np.int64) if history is None else history,
        k,
        exclude_seen=False,
        categories=tuple(parsed.categories),
        min_price=parsed.min_price,
        max_price=parsed.max_price,
        query=parsed.text,
    )
    return request, parsed


def mentioned_categories(text: str, categories: Iterable[str]) -> list[str]:
    """The category names that occur in ``text`` as whole words, in order of appearance.

    One alternation, longest name first, so "Nail Polish" wins over a shorter name inside it.
    """
    names = {name.strip().lower(): name.strip() for name in categories if name.strip()}
    if not names or not text:
        return []
    alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])", re.IGNORECASE)
    found = dict.fromkeys(names[match.group(0).lower()] for match in pattern.finditer(text))
    return list(found)
