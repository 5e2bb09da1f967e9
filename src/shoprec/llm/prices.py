"""Price phrases in English and Chinese -> bounds, the currency named and a price order, cut out of the text.

Rules do this better than a small LM: they never invent a bound, and read "20元以下" and "under $20" alike. They are
a table of regular expressions tried in order; each match is cut from the text so that a later, looser rule (or
whatever reads the rest) never sees it. To avoid reading "2 pack" or "spf 50" as a price, a number counts only next
to a currency sign or word, or after a comparison word, and never when a unit follows it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

Bound = Literal["max", "min", "range"]
Currency = Literal["CNY", "USD"]
Order = Literal["price_asc", "price_desc"]

# Numbers in digits, Chinese numerals ("两百", not the ordinal "第五") or English words ("twenty-five", "a hundred").
# A price needs a comparison word before it or a currency word or bound after it ("两百块以内", "under twenty
# dollars"), so "三星" or "all in one" stay words.
_ZH_DIGITS = dict(zip("零〇一二两三四五六七八九", (0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9), strict=True))
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
EN_UNITS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
EN_UNITS += ("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
EN_DECADES = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")  # 20-90
EN_SMALL = {word: value for value, word in enumerate(EN_UNITS)}
EN_TENS = {word: 10 * i for i, word in enumerate(EN_DECADES, start=2)}
_EN_WORD = "|".join([*EN_SMALL, *EN_TENS, "hundred", "thousand"])
_NUMBER = (
    r"((?<![A-Za-z0-9.])\d+(?:\.\d+)?(?![\d])(?!\.\d)|(?<!第)[零〇一二两三四五六七八九十百千万]+|"
    rf"(?<![A-Za-z])(?:(?:a|one)\s+)?(?:{_EN_WORD})(?:(?:\s+|-)(?:{_EN_WORD}))*(?![A-Za-z])(?!-[A-Za-z]))"
)
_CURRENCY_BEFORE = r"(?:[$¥]\s*|(?:usd|rmb|us\$)\s*)"
_CURRENCY_AFTER = (
    r"(?:\s*(?:dollars?|bucks?|usd|rmb|yuan|kuai)(?![A-Za-z])|\s*(?:美元|美金|元人民币|元钱?|块钱?|人民币|[$¥]))"
)
# A number followed by one of these measures something else (size, count, SPF, age), whatever word precedes it.
_UNIT = (
    r"\s*(?:%|(?:oz|ounces?|fl|ml|l|g|grams?|kg|lbs?|pounds?|mm|cm|inch(?:es)?|in|packs?|pcs|pieces?|count|ct|x|"
    r"spf|years?|months?|weeks?|days?|hours?|hrs?|minutes?|mins?|times?|"
    r"片|支|瓶|盒|包|袋|个|件|条|双|套|张|只|台|部|本|根|毫升|升|克|斤|公斤|岁|年|月|周|天|小时|次|层|寸|米|度|码|号)"
    r"(?![A-Za-z]))"
)
_PRICE = rf"{_CURRENCY_BEFORE}?{_NUMBER}(?:{_CURRENCY_AFTER}|(?!{_UNIT}))"
_PRICE_WITH_CURRENCY_AFTER = rf"{_CURRENCY_BEFORE}?{_NUMBER}{_CURRENCY_AFTER}"
_PRICE_WITH_CURRENCY = rf"(?:{_CURRENCY_BEFORE}{_NUMBER}(?:{_CURRENCY_AFTER})?|{_NUMBER}{_CURRENCY_AFTER})"
_RANGE_WORD = r"\s*(?:-|–|~|到|至|to)\s*"
_EN = r"(?<![A-Za-z])"  # an English word starts here (Chinese characters count as \w, so no \b)
_END = r"(?![A-Za-z])"

# (pattern, bound), tried in order. Negated comparisons ("no more than", "不超过") come before the plain ones they
# contain ("more than", "超过"), and ranges before single bounds.
_RULES: list[tuple[str, Bound]] = [
    (rf"{_EN}(?:between|from)\s+{_PRICE}\s+(?:and|to)\s+{_PRICE}", "range"),
    (rf"{_CURRENCY_BEFORE}{_NUMBER}{_RANGE_WORD}{_PRICE}(?:\s*之间)?", "range"),
    (rf"{_CURRENCY_BEFORE}?{_NUMBER}{_RANGE_WORD}{_PRICE_WITH_CURRENCY_AFTER}(?:\s*之间)?", "range"),
    (rf"(?:{_EN}(?:no|not)\s+(?:more|higher)\s+than|不超过|不高于|不多于|不大于|最多|最高|顶多)\s*{_PRICE}", "max"),
    (rf"(?:{_EN}(?:no|not)\s+(?:less|lower)\s+than|不低于|不少于|不小于|至少|最少|最低)\s*{_PRICE}", "min"),
    (
        rf"(?:{_EN}(?:under|below|less\s+than|cheaper\s+than|lower\s+than|at\s+most|up\s+to|within|"
        rf"budget(?:\s+(?:is|of))?){_END}|<=?|≤|低于|少于|小于|不到|便宜于|预算)\s*{_PRICE}",
        "max",
    ),
    (rf"{_PRICE}\s*(?:以下|以内|之内|内)", "max"),
    (rf"{_PRICE}\s*(?:or\s+(?:less|under|below|cheaper)|and\s+(?:under|below)){_END}", "max"),
    # "max"/"min" name a price only with a currency: "air max 90" and "pro max 256" are product names
    (rf"{_EN}max(?:imum)?{_END}\s*{_PRICE_WITH_CURRENCY}|{_PRICE_WITH_CURRENCY}\s*max(?:imum)?{_END}", "max"),
    (rf"{_EN}min(?:imum)?{_END}\s*{_PRICE_WITH_CURRENCY}|{_PRICE_WITH_CURRENCY}\s*min(?:imum)?{_END}", "min"),
    (
        rf"(?:{_EN}(?:over|above|more\s+than|greater\s+than|higher\s+than|at\s+least){_END}|>=?|≥|"
        rf"高于|超过|多于|大于)\s*{_PRICE}",
        "min",
    ),
    (rf"{_PRICE}\s*(?:以上|起)", "min"),
    (rf"{_PRICE}\s*(?:or\s+(?:more|above|over)|and\s+(?:up|above|over)){_END}", "min"),
]
_COMPILED = [(re.compile(pattern, re.IGNORECASE), bound) for pattern, bound in _RULES]
_ORDERS: list[tuple[re.Pattern[str], Order]] = [
    (
        re.compile(rf"{_EN}(?:cheapest|least\s+expensive|lowest[\s-]+prices?){_END}|最便宜|价格最低|最低价", re.I),
        "price_asc",
    ),
    (
        re.compile(rf"{_EN}(?:most\s+expensive|priciest|highest[\s-]+prices?){_END}|最贵|价格最高|最高价", re.I),
        "price_desc",
    ),
]
_USD = re.compile(r"\$|美元|美金|(?<![A-Za-z])(?:usd|dollars?|bucks?)(?![A-Za-z])", re.IGNORECASE)
_CNY = re.compile(r"¥|(?<!美)元|块|人民币|(?<![A-Za-z])(?:rmb|yuan|kuai)(?![A-Za-z])", re.IGNORECASE)
# Words left dangling at either end once a price phrase is cut out ("lipstick for", "价格在 的口红").
_FILLER = (
    r"(?:(?<![A-Za-z])(?:for|at|and|with|priced|costing|price)(?![A-Za-z])|价格|价钱|的|在|[\s,，。、;；:：!！?？])+"
)
_LEADING = re.compile(rf"^{_FILLER}", re.IGNORECASE)
_TRAILING = re.compile(rf"{_FILLER}$", re.IGNORECASE)


@dataclass(frozen=True)
class Prices:
    """The price constraints a text states, and the text without the phrases that stated them."""

    text: str
    min_price: float | None = None
    max_price: float | None = None
    currency: Currency | None = None  # only when a currency sign or word was written
    order: Order | None = None  # "cheapest", "最贵": an order rather than a bound (its words stay in ``text``)


def _zh_number(text: str) -> float:
    """Chinese numerals: 两百 200, 一千五 1500 (a digit after the last unit counts in the unit below), 一百零五 105."""
    total, section, digit, unit, zero = 0, 0, 0, 1, False
    for char in text:
        if char in _ZH_DIGITS:
            digit, zero = _ZH_DIGITS[char], zero or _ZH_DIGITS[char] == 0
        elif char == "万":
            total += (section + digit) * 10000
            section, digit, unit = 0, 0, 10000
        else:
            unit = _ZH_UNITS[char]
            section += (digit or (1 if unit == 10 else 0)) * unit
            digit = 0
    if digit and unit >= 100 and not zero:
        digit *= unit // 10
    return float(total + section + digit)


def _value(number: str) -> float:
    if number[0].isdigit():
        return float(number)
    return _zh_number(number) if number[0] in _ZH_DIGITS or number[0] in _ZH_UNITS else _en_number(number)


def _en_number(text: str) -> float:
    total, current = 0, 0
    for word in re.split(r"[\s-]+", text.lower()):
        if word in EN_SMALL:
            current += EN_SMALL[word]
        elif word in EN_TENS:
            current += EN_TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word == "thousand":
            total, current = total + max(current, 1) * 1000, 0
    return float(total + current)


def normalise(text: str) -> str:
    """NFKC: full-width digits, letters and signs become ASCII ones ("１００元" -> "100元")."""
    return unicodedata.normalize("NFKC", text)


def has_number(text: str) -> bool:
    """Whether ``text`` writes a number at all (digits, Chinese numerals or English number words)."""
    return re.search(_NUMBER, normalise(text), re.IGNORECASE) is not None


def parse_prices(text: str) -> Prices:
    """Bounds (a later bound of the same side tightens, never loosens), currency and order stated in ``text``."""
    text = normalise(text)
    min_price: float | None = None
    max_price: float | None = None
    currency: Currency | None = None
    for pattern, bound in _COMPILED:
        for match in pattern.finditer(text):
            values = sorted(_value(group) for group in match.groups() if group is not None)
            if bound in ("min", "range"):
                min_price = values[0] if min_price is None else max(min_price, values[0])
            if bound in ("max", "range"):
                max_price = values[-1] if max_price is None else min(max_price, values[-1])
            currency = currency or _currency(match.group(0))
        text = pattern.sub(" ", text)
    order = next((name for pattern, name in _ORDERS if pattern.search(text)), None)  # the words stay in the text
    if min_price is not None and max_price is not None and min_price > max_price:
        min_price, max_price = max_price, min_price  # "over 50 under 20": the shopper swapped them
    text = " ".join(text.split())
    text = _TRAILING.sub("", _LEADING.sub("", text))
    return Prices(text=text, min_price=min_price, max_price=max_price, currency=currency, order=order)


def _currency(phrase: str) -> Currency | None:
    if _CNY.search(phrase):
        return "CNY"
    if _USD.search(phrase):
        return "USD"
    return None
