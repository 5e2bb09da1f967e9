"""A labelled query set for query understanding, written from real catalogs: each row is a query and the slots a
parser should read from it.

Product types, brands and prices come from real items: Chinese product types (HC tags) and brands (HP tags) of
Taobao titles (``zh_product_titles``); English category levels of Amazon Beauty, brand and leaf category of Amazon
Scientific, category code, brand and USD price of REES46 events. Where a catalog has no prices (all but REES46) the
price in a query is drawn from a grid of round numbers. The phrasing comes from templates, and the templates of the
``dev`` split and the ``test`` split are disjoint at every part (sentence frame, product phrase, price phrase, order,
exclusion), as are their items: rules tuned on ``dev`` meet ``test``'s phrasings for the first time.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from shoprec.llm.intent import NAME_CHARS, Intent, Language
from shoprec.llm.intent_sources import Product, Source
from shoprec.llm.prices import EN_DECADES, EN_UNITS, Currency

Split = Literal["dev", "test"]
Bound = Literal["max", "min", "range", "asc", "desc"]


# ---- phrasing ------------------------------------------------------------------------------------------------
# Per language and split: sentence frames, product phrases, price phrases by bound (with the currency they name),
# order phrases and exclusion phrases. {n} a price, {a}/{b} a range, {x} the excluded name.


@dataclass(frozen=True)
class Phrasing:
    frames: tuple[str, ...]  # {product} and {extra}
    products: tuple[str, ...]  # {brand} and {category}
    prices: dict[str, tuple[tuple[str, Currency | None], ...]]  # bound -> (template, currency named)
    orders: dict[str, tuple[str, ...]]  # "asc" | "desc" -> phrases
    exclusions: tuple[str, ...]
    joiner: str  # between the parts of {extra}


PHRASINGS: dict[tuple[Language, Split], Phrasing] = {
    ("en", "dev"): Phrasing(
        frames=("{product} {extra}", "looking for {product} {extra}", "show me {product} {extra}",
                "best {product} {extra}"),
        products=("{brand} {category}", "{category} from {brand}", "{category} by {brand}"),
        prices={
            "max": (("under {n}", None), ("under ${n}", "USD"), ("less than ${n}", "USD"), ("below {n} dollars", "USD"),
                    ("cheaper than {n} usd", "USD"), ("under {nw} dollars", "USD")),
            "min": (("over ${n}", "USD"), ("more than {n} dollars", "USD"), ("above {n}", None)),
            "range": (("between ${a} and ${b}", "USD"), ("${a}-${b}", "USD")),
        },
        orders={"asc": ("cheapest",), "desc": ("most expensive",)},
        exclusions=("not {x}", "no {x}", "except {x}"),
        joiner=", ",
    ),
    ("en", "test"): Phrasing(
        frames=("I need {product} {extra}", "any good {product}? {extra}", "recommend {product} please {extra}",
                "gift idea: {product} {extra}"),
        products=("{category} made by {brand}", "{brand}'s {category}", "{category}, brand {brand}"),
        prices={
            "max": (("at most ${n}", "USD"), ("no more than {n} bucks", "USD"), ("max {n} usd", "USD"),
                    ("${n} or less", "USD"), ("up to {n} dollars", "USD"), ("within ${n}", "USD"),
                    ("my budget is {n}", None), ("less than {nw} bucks", "USD")),
            "min": (("at least ${n}", "USD"), ("no less than {n} dollars", "USD"), ("${n} and up", "USD"),
                    ("minimum {n} usd", "USD")),
            "range": (("from ${a} to ${b}", "USD"), ("{a} to {b} dollars", "USD"), ("${a}~${b}", "USD")),
        },
        orders={"asc": ("least expensive", "lowest price"), "desc": ("priciest",)},
        exclusions=("without {x}", "excluding {x}", "anything but {x}", "avoid {x}", "other than {x}"),
        joiner=" ",
    ),
    ("zh", "dev"): Phrasing(
        frames=("我想买{product}{extra}", "推荐{product}{extra}", "{product}{extra}", "有没有{product}{extra}",
                "正品{product}{extra}", "{product}{extra}，包邮"),
        products=("{brand}的{category}", "{brand}{category}", "{brand} {category}"),
        prices={
            "max": (("{n}元以下", "CNY"), ("不超过{n}块", "CNY"), ("{n}块以内", "CNY"), ("低于{n}元", "CNY"),
                    ("{n}以内", None), ("{nw}元以下", "CNY")),
            "min": (("{n}元以上", "CNY"), ("高于{n}元", "CNY"), ("超过{n}块", "CNY")),
            "range": (("{a}-{b}元", "CNY"), ("{a}到{b}元", "CNY")),
        },
        orders={"asc": ("最便宜的",), "desc": ("最贵的",)},
        exclusions=("不要{x}", "除了{x}"),
        joiner="，",
    ),
    ("zh", "test"): Phrasing(
        frames=("帮我找{product}{extra}", "求推荐{product}{extra}", "给我看看{product}{extra}", "想要{product}{extra}",
                "新款{product}{extra}", "{product}{extra}，要正品的"),
        products=("{brand}家的{category}", "{category}，{brand}牌子的", "{category}（{brand}）"),
        prices={
            "max": (("{n}块钱以下", "CNY"), ("价格不高于{n}元", "CNY"), ("预算{n}元", "CNY"), ("{n}元之内", "CNY"),
                    ("最多{n}块钱", "CNY"), ("¥{n}以内", "CNY"), ("{nw}块以内", "CNY"), ("不超过{nw}块钱", "CNY")),
            "min": (("至少{n}元", "CNY"), ("{n}块钱以上", "CNY"), ("不低于{n}元", "CNY")),
            "range": (("{a}到{b}块", "CNY"), ("{a}~{b}元", "CNY"), ("价格在{a}至{b}元之间", "CNY")),
        },
        orders={"asc": ("价格最低的",), "desc": ("价格最高的",)},
        exclusions=("别推荐{x}", "{x}的不要", "排除{x}", "不想要{x}", "{x}除外"),
        joiner="，",
    ),
}  # fmt: skip
_ROUND_PRICES = (10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 300, 500, 800, 1000)


@dataclass(frozen=True)
class Labelled:
    """One query and the slots it states (``attributes`` is not labelled: the catalogs have no attribute tags)."""

    query: str
    source: str
    split: Split
    template: str  # which phrasing parts made it, e.g. "frame1/product0/max2/excl1"
    expected: Intent

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "source": self.source,
            "split": self.split,
            "template": self.template,
            "expected": self.expected.model_dump(exclude={"attributes"}),
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Labelled:
        return cls(row["query"], row["source"], row["split"], row["template"], Intent(**row["expected"]))


def build_intent_set(sources: Sequence[Source], split: Split, per_language: int, seed: int) -> list[Labelled]:
    """``per_language`` queries per language (its sources taken in turn) written with ``split``'s phrasing from
    ``split``'s half of each source's items (items shuffled with ``seed``, first half dev, second test)."""
    rng = random.Random(f"{seed}/{split}")
    rows: list[Labelled] = []
    for language in ("en", "zh"):
        pools = [(source, _half(source, split, seed)) for source in sources if source.language == language]
        if not pools:
            continue
        for i in range(per_language):
            source, pool = pools[i % len(pools)]
            rows.append(_query(rng, source, pool, split))
    return rows


def _half(source: Source, split: Split, seed: int) -> list[Product]:
    """``split``'s half of the source's items, less those with a name longer than an ``Intent`` slot holds (their
    label would not validate); the halves are cut before that, so which items are dev and which test never moves."""
    usable = [p for p in source.products if p.category or p.brand]
    random.Random(f"{seed}/{source.name}").shuffle(usable)
    middle = len(usable) // 2
    half = usable[:middle] if split == "dev" else usable[middle:]
    return [p for p in half if _fits(p.category) and _fits(p.brand)]


def _fits(name: str | None) -> bool:
    return name is None or len(name) <= NAME_CHARS


def _query(rng: random.Random, source: Source, pool: Sequence[Product], split: Split) -> Labelled:
    phrasing = PHRASINGS[(source.language, split)]
    product = rng.choice(pool)
    slots: dict[str, Any] = {"language": source.language}
    parts: list[str] = []
    names: list[str] = []
    category = product.category if product.category and (not product.brand or rng.random() < 0.85) else None
    brand = product.brand if product.brand and (not category or rng.random() < 0.6) else None
    pattern = "{category}" if brand is None else "{brand}" if category is None else rng.choice(phrasing.products)
    names.append(f"product{phrasing.products.index(pattern)}" if pattern in phrasing.products else "product-")
    phrase = pattern.format(
        brand=_surface(rng, brand, source.language), category=_surface(rng, category, source.language, "category")
    )
    slots.update(category=category, brand=brand)
    kind = rng.choices(["max", "min", "range", "asc", "desc", None], weights=[30, 12, 12, 6, 4, 36])[0]
    if kind is not None:
        part, name, stated = _price_part(rng, phrasing, kind, product.price, source.language)
        parts.append(part)
        names.append(name)
        slots.update(stated)
    excluded = _exclusion(rng, source, product) if rng.random() < 0.3 else None
    if excluded is not None:
        what, name = excluded
        template = rng.choice(phrasing.exclusions)
        names.append(f"excl{phrasing.exclusions.index(template)}")
        parts.append(template.format(x=_surface(rng, name, source.language, what)))
        slots["exclude_brands" if what == "brand" else "exclude_categories"] = [name]
    rng.shuffle(parts)
    frame = rng.choice(phrasing.frames)
    names.insert(0, f"frame{phrasing.frames.index(frame)}")
    query = frame.format(product=phrase, extra=(phrasing.joiner if parts else "") + phrasing.joiner.join(parts))
    query = " ".join(query.split()).replace(" ,", ",")
    return Labelled(query, source.name, split, "/".join(names), Intent(**slots))


def _price_part(
    rng: random.Random, phrasing: Phrasing, kind: str, price: float | None, language: Language
) -> tuple[str, str, dict[str, Any]]:
    """(phrase, template name, slots it states) for a price bound or order of ``kind``."""
    if kind in ("asc", "desc"):
        return rng.choice(phrasing.orders[kind]), kind, {"sort": "price_asc" if kind == "asc" else "price_desc"}
    template, currency = rng.choice(phrasing.prices[kind])
    low, high = _prices(rng, price)
    value = high if kind == "max" else low
    phrase = template.format(n=_number(value), nw=in_words(value, language), a=_number(low), b=_number(high))
    bounds = {"max": (None, high), "min": (low, None), "range": (low, high)}[kind]
    slots = {"currency": currency, "min_price": bounds[0], "max_price": bounds[1]}
    return phrase, f"{kind}{phrasing.prices[kind].index((template, currency))}", slots


def _surface(rng: random.Random, name: str | None, language: Language, kind: str = "brand") -> str:
    """How a shopper might type a catalog name: mostly lower case; a product type sometimes in the other number."""
    if name is None:
        return ""
    if language == "zh":
        return name
    text = name.lower() if rng.random() < 0.8 else name
    if kind == "category" and rng.random() < 0.3 and text[-1:].isalpha():
        text = _other_number(text)
    return text


def _other_number(text: str) -> str:
    """The plural of a singular last word, or the singular of a plural one ("brushes" <-> "brush")."""
    if text.endswith("ies"):
        return text[:-3] + "y"
    if text.endswith(("ches", "shes", "sses", "xes")):
        return text[:-2]
    if text.endswith("s") and not text.endswith("ss"):
        return text[:-1]
    if text.endswith(("ch", "sh", "ss", "x")):
        return text + "es"
    if text.endswith("y") and text[-2:-1] not in "aeiou":
        return text[:-1] + "ies"
    return text + "s"


def _prices(rng: random.Random, price: float | None) -> tuple[float, float]:
    """(low, high) bounds: round numbers around the item's price, or from a grid when the catalog has none."""
    if price is None or price <= 0:
        low, high = sorted(rng.sample(_ROUND_PRICES, 2))
        return float(low), float(high)
    above = [p for p in _ROUND_PRICES if p >= price] or [int(price * 1.5) + 1]
    below = [p for p in _ROUND_PRICES if p <= price] or [max(1, int(price / 2))]
    return float(rng.choice(below[-3:])), float(rng.choice(above[:3]))


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def in_words(value: float, language: Language) -> str:
    """A round price written out, as shoppers sometimes do ("两百块以内", "under twenty dollars")."""
    return _zh_words(value) if language == "zh" else _en_words(value)


def _zh_words(value: float) -> str:
    """A round price (under 10,000) in Chinese numerals, as people write it: 200 "两百", 150 "一百五十"."""
    digits = "零一二三四五六七八九"
    number, out = int(value), ""
    for unit, name in ((1000, "千"), (100, "百"), (10, "十")):
        count, number = divmod(number, unit)
        if count:
            out += ("两" if count == 2 and unit >= 100 else digits[count]) + name
        elif out and number:
            out += "零" if not out.endswith("零") else ""
    out += digits[number] if number else ""
    return out[1:] if out.startswith("一十") else out  # 10-19: "十五", not "一十五"


def _en_words(value: float) -> str:
    """A round price (under 10,000) in English words: 25 "twenty-five", 150 "one hundred fifty"."""
    number, words = int(value), []
    for unit, name in ((1000, "thousand"), (100, "hundred")):
        count, number = divmod(number, unit)
        if count:
            words.append(f"{EN_UNITS[count]} {name}")
    if number >= 20:
        words.append(EN_DECADES[number // 10 - 2] + (f"-{EN_UNITS[number % 10]}" if number % 10 else ""))
    elif number:
        words.append(EN_UNITS[number])
    return " ".join(words)


def _exclusion(rng: random.Random, source: Source, product: Product) -> tuple[str, str] | None:
    """Another brand (when the catalog has brands) or another product type of the same catalog."""
    if source.terms.brands and rng.random() < 0.6:
        choices = [b for b in source.terms.brands if b != product.brand and _fits(b)]
        return ("brand", rng.choice(choices)) if choices else None
    choices = [c for c in source.terms.categories if c != product.category and _fits(c)]
    return ("category", rng.choice(choices)) if choices else None


def write_jsonl(rows: Sequence[Labelled], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[Labelled]:
    with path.open(encoding="utf-8") as handle:
        return [Labelled.from_json(json.loads(line)) for line in handle if line.strip()]
