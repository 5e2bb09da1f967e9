"""Search query -> free text for the encoder plus the constraints it states (price bounds, catalog categories).

An encoder cannot enforce "under $20", so price phrases are parsed out and applied as hard filters. The rules are a
table of regular expressions, English and Chinese, tried in order; each match is cut from the text so that a later,
looser rule (or the encoder) never sees it. To avoid reading "2 pack" or "spf 50" as a price, a number counts only
next to a currency sign or word, or after a comparison word, and never when a unit follows it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Literal

from shoprec.serving.schemas import ParsedQuery

Bound = Literal["max", "min", "range"]

_NUMBER = r"(?<![A-Za-z0-9.])(\d+(?:\.\d+)?)(?![\d])(?!\.\d)"
_CURRENCY_BEFORE = r"(?:[$¥]\s*|(?:usd|rmb)\s+)"
_CURRENCY_AFTER = r"(?:\s*(?:dollars?|bucks?|usd|rmb)(?![A-Za-z])|\s*(?:元|块钱?|[$¥]))"
# A number followed by one of these measures something else (size, count, SPF, age), whatever word precedes it.
_UNIT = (
    r"\s*(?:%|(?:oz|ounces?|fl|ml|l|g|grams?|kg|lbs?|pounds?|mm|cm|inch(?:es)?|in|packs?|pcs|pieces?|count|ct|x|"
    r"spf|years?|months?|days?|hours?|hrs?|minutes?|mins?|片|支|瓶|盒|个|毫升|克|岁|天|小时)(?![A-Za-z]))"
)
_PRICE = rf"{_CURRENCY_BEFORE}?{_NUMBER}(?:{_CURRENCY_AFTER}|(?!{_UNIT}))"
_PRICE_WITH_CURRENCY_AFTER = rf"{_CURRENCY_BEFORE}?{_NUMBER}{_CURRENCY_AFTER}"
_RANGE_WORD = r"\s*(?:-|–|~|到|至|to)\s*"
_EN = r"(?<![A-Za-z])"  # an English comparison word starts a word (Chinese characters count as \w, so no \b)

# (pattern, bound), tried in order. Negated comparisons ("no more than", "不超过") come before the plain ones they
# contain ("more than", "超过"), and ranges before single bounds.
_RULES: list[tuple[str, Bound]] = [
    (rf"{_EN}between\s+{_PRICE}\s+and\s+{_PRICE}", "range"),
    (rf"{_CURRENCY_BEFORE}{_NUMBER}{_RANGE_WORD}{_PRICE}(?:\s*之间)?", "range"),
    (rf"{_CURRENCY_BEFORE}?{_NUMBER}{_RANGE_WORD}{_PRICE_WITH_CURRENCY_AFTER}(?:\s*之间)?", "range"),
    (rf"(?:{_EN}(?:no|not)\s+more\s+than|不超过|不高于|不多于|最多)\s*{_PRICE}", "max"),
    (rf"(?:{_EN}(?:no|not)\s+less\s+than|不低于|不少于|至少)\s*{_PRICE}", "min"),
    (
        rf"(?:{_EN}(?:under|below|less\s+than|cheaper\s+than|lower\s+than|at\s+most|up\s+to)|<=?|≤|低于|少于|小于|不到)"
        rf"\s*{_PRICE}",
        "max",
    ),
    (rf"{_PRICE}\s*(?:以下|以内|之内)", "max"),
    (
        rf"(?:{_EN}(?:over|above|more\s+than|greater\s+than|higher\s+than|at\s+least)|>=?|≥|高于|超过|多于|大于)\s*{_PRICE}",
        "min",
    ),
    (rf"{_PRICE}\s*以上", "min"),
]
_COMPILED = [(re.compile(pattern, re.IGNORECASE), bound) for pattern, bound in _RULES]
# Words left dangling at either end once a price phrase is cut out ("lipstick for", "价格在 的口红").
_FILLER = (
    r"(?:(?<![A-Za-z])(?:for|at|and|with|priced|costing|price)(?![A-Za-z])|价格|价钱|的|在|[\s,，。、;；:：!！?？])+"
)
_LEADING = re.compile(rf"^{_FILLER}", re.IGNORECASE)
_TRAILING = re.compile(rf"{_FILLER}$", re.IGNORECASE)


def parse_query(query: str, categories: Iterable[str]) -> ParsedQuery:
    """Price bounds and mentioned ``categories`` (whole words, case-insensitive, longest first) of ``query``.

    Price phrases are removed from the text; category words stay, since they also help the encoder rank.
    """
    text = unicodedata.normalize("NFKC", query)  # full-width digits and signs become ASCII ones
    min_price: float | None = None
    max_price: float | None = None
    for pattern, bound in _COMPILED:
        for match in pattern.finditer(text):
            values = sorted(float(group) for group in match.groups() if group is not None)
            if bound in ("min", "range"):
                min_price = values[0] if min_price is None else max(min_price, values[0])
            if bound in ("max", "range"):
                max_price = values[-1] if max_price is None else min(max_price, values[-1])
        text = pattern.sub(" ", text)
    text = " ".join(text.split())
    text = _TRAILING.sub("", _LEADING.sub("", text))
    return ParsedQuery(
        text=text, min_price=min_price, max_price=max_price, categories=mentioned_categories(text, categories)
    )


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
