"""Query understanding: a shopper's text -> ``Intent``, by rules where rules are reliable and by an LLM for the rest.

Rules own what they read exactly: the language (share of Chinese characters), prices and currency
(``llm.prices``), and brands and product types named the way the catalog names them (``llm.terms``), with the
ones the shopper rules out. An LLM, decoding under ``intent_schema()``, adds what rules cannot read (attributes,
product types in other words); ``merge`` keeps the rules' answer wherever they have one. ``refine`` turns a
follow-up ("cheaper", "not that brand", "更便宜的", "换个牌子") and the previous intent into the next one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shoprec.llm.prices import Currency, Order, normalise, parse_prices
from shoprec.llm.terms import CJK, CatalogTerms, Mention

Language = Literal["zh", "en"]
MAX_NAMES = 4  # per list slot, and NAME_CHARS per name: bound what a small model that repeats itself can write
NAME_CHARS = 40
Name = Annotated[str, Field(max_length=NAME_CHARS)]
NAME_WORDS = 3  # a run of this many Latin words or fewer inside Chinese text reads as a name
_CJK = re.compile(f"[{CJK}]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
_LATIN_RUN = re.compile(rf"[A-Za-z]+(?:[^A-Za-z{CJK}]+[A-Za-z]+)*")  # Latin words with no Chinese between them


class Intent(BaseModel):
    """What a shopper asks for. Names are the catalog's own where one fits; every slot may be empty."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_serialization_defaults_required=True)

    category: Name | None = Field(None, description="the product type asked for, e.g. 'nail polish', '运动鞋'")
    brand: Name | None = Field(None, description="the brand asked for")
    min_price: float | None = Field(None, ge=0, description="lowest acceptable price, a number without currency")
    max_price: float | None = Field(None, ge=0, description="highest acceptable price, a number without currency")
    currency: Currency | None = Field(None, description="the currency the query names: 元/块/rmb/¥ CNY, $/usd USD")
    sort: Order | None = Field(None, description="'cheapest' -> price_asc, 'most expensive' -> price_desc")
    attributes: list[Name] = Field(
        default_factory=list, max_length=MAX_NAMES, description="wanted features, e.g. 'waterproof', '红色'"
    )
    exclude_brands: list[Name] = Field(
        default_factory=list, max_length=MAX_NAMES, description="brands the shopper does not want"
    )
    exclude_categories: list[Name] = Field(
        default_factory=list, max_length=MAX_NAMES, description="product types the shopper does not want"
    )
    language: Language = Field("en", description="zh if the query is mainly Chinese, else en")

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Intent:
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError(f"min_price {self.min_price} is above max_price {self.max_price}")
        return self


def intent_schema() -> dict[str, Any]:
    """The JSON schema to constrain decoding with: every slot required (null or [] when absent), so a model always
    writes each one instead of stopping early."""
    return Intent.model_json_schema(mode="serialization")


def detect_language(text: str) -> Language:
    """zh when Chinese characters make at least half of the text. Chinese queries often hold a Latin brand or model
    name ("dr.ci#labo 面霜", "nike air max 运动鞋"), so a run of up to three Latin words counts as one, like a name; a
    longer run is English prose and counts word by word ("nail polish by OPI, no 迪奥" is English)."""
    text = normalise(text)
    chinese = len(_CJK.findall(text))
    runs = [len(_LATIN_WORD.findall(run)) for run in _LATIN_RUN.findall(text)]
    latin = sum(1 if words <= NAME_WORDS else words for words in runs)
    return "zh" if chinese and chinese >= latin else "en"


def parse(query: str, terms: CatalogTerms) -> Intent:
    """The rules' intent: prices first (their phrases are cut out), then the catalog names in what is left.

    Of several wanted product types the last is kept (the head of a noun phrase comes last in English and Chinese:
    "skin care moisturizer", "儿童运动鞋"); of several brands the first.
    """
    prices = parse_prices(query)
    mentions = terms.find(prices.text)
    wanted = [m for m in mentions if not m.excluded]
    categories = _names(wanted, "category", brand_elsewhere=False)
    brands = _names(wanted, "brand", brand_elsewhere=bool(_names(wanted, "category", brand_elsewhere=True)))
    excluded = [m for m in mentions if m.excluded]
    return Intent(
        category=categories[-1] if categories else None,
        brand=brands[0] if brands else None,
        min_price=prices.min_price,
        max_price=prices.max_price,
        currency=prices.currency,
        sort=prices.order,
        exclude_brands=_names(excluded, "brand", brand_elsewhere=True),
        exclude_categories=_names(excluded, "category", brand_elsewhere=False),
        language=detect_language(query),
    )


def _names(mentions: Sequence[Mention], kind: Literal["brand", "category"], brand_elsewhere: bool) -> list[str]:
    """Distinct names of ``kind``. A name the catalog uses for both counts as a brand when ``brand_elsewhere`` (the
    query names a product type besides it), else as a category."""
    return list(
        dict.fromkeys(
            m.name for m in mentions if m.kind == kind or (m.kind == "both" and (kind == "brand") == brand_elsewhere)
        )
    )


def merge(rules: Intent, llm: Intent, query: str, terms: CatalogTerms) -> Intent:
    """The rules' reading, with the LLM's only where the query supports it (docs/llm.md measured the looser merge:
    it broke slots the rules had right in most queries and fixed none).

    Rules win for the language, prices and order: their words are few and the rules know them all (the 1.5B model
    invented an order for half the queries); all price slots come from whichever side found a bound, the rules first.
    Every other slot is the rules' when they filled it; else the LLM's, only as a name the catalog has (its
    spelling): a category may be inferred from a product word, but a brand or an exclusion must also be written in
    the query (a product word never implies a brand). A brand or category the result excludes is dropped, and an
    exclusion of what the rules read as asked for is dropped."""
    prices = rules if _has_price(rules) or not _has_price(llm) else llm
    categories = {name.casefold(): name for name in terms.categories}
    brands = {name.casefold(): name for name in terms.brands}
    written = query.casefold()

    def named(name: str | None, names: dict[str, str], stated: bool) -> str | None:
        known = None if name is None else names.get(name.strip().casefold())
        return known if known is not None and (not stated or known.casefold() in written) else None

    def listed(values: list[str], names: dict[str, str]) -> list[str]:
        return [known for value in values if (known := named(value, names, stated=True)) is not None]

    slots: dict[str, Any] = {
        "category": rules.category or named(llm.category, categories, stated=False),
        "brand": rules.brand or named(llm.brand, brands, stated=True),
        "sort": rules.sort,
        "attributes": rules.attributes or llm.attributes,
        "exclude_brands": rules.exclude_brands or listed(llm.exclude_brands, brands),
        "exclude_categories": rules.exclude_categories or listed(llm.exclude_categories, categories),
    }
    for wanted, excluded in (("brand", "exclude_brands"), ("category", "exclude_categories")):
        if getattr(rules, wanted) is not None:  # the rules read it asked for: an LLM exclusion of it is a misreading
            slots[excluded] = [name for name in slots[excluded] if name.casefold() != slots[wanted].casefold()]
        elif slots[wanted] is not None and slots[wanted].casefold() in {n.casefold() for n in slots[excluded]}:
            slots[wanted] = None
    return Intent(
        **slots,
        min_price=prices.min_price,
        max_price=prices.max_price,
        currency=prices.currency,
        language=rules.language,
    )


def _has_price(intent: Intent) -> bool:
    return intent.min_price is not None or intent.max_price is not None


_CHEAPER = re.compile(
    r"(?<![A-Za-z])(?:cheaper|less\s+expensive|lower\s+price[ds]?|too\s+expensive|more\s+affordable)(?![A-Za-z])|"
    r"更便宜|便宜[点些一]|再便宜|太贵|价格低一?[点些]|实惠[点些一]",
    re.IGNORECASE,
)
_PRICIER = re.compile(
    r"(?<![A-Za-z])(?:pricier|more\s+expensive|higher\s+price[ds]?|too\s+cheap|more\s+premium|fancier)(?![A-Za-z])|"
    r"更贵|贵[点些一]|太便宜|高档[点些一]|更高端|高端[点些一]",
    re.IGNORECASE,
)
_OTHER_BRAND = re.compile(
    r"(?<![A-Za-z])(?:(?:not|no|don't\s+want|without)\s+(?:that|this|those|these)\s+brands?|"
    r"(?:another|other|different)\s+brands?)(?![A-Za-z])|"
    r"换[个一]?(?:个)?(?:牌子|品牌)|别的(?:牌子|品牌)|其他(?:牌子|品牌)|不要(?:这|那)(?:个|种|家)?(?:牌子|品牌)|"
    r"(?:这|那)(?:个|家)?(?:牌子|品牌)不要",
    re.IGNORECASE,
)


def refine(
    previous: Intent,
    message: str,
    terms: CatalogTerms,
    shown_brands: Sequence[str] = (),
    shown_prices: Sequence[float] = (),
) -> Intent:
    """The intent after a follow-up ``message``, given the one before and what was shown (brands, prices).

    What the message states replaces the old slot; exclusions add up (a brand asked for again leaves them).
    "cheaper" caps the price at the cheapest item shown (or orders by price when nothing priced was shown); "more
    expensive" floors it at the dearest; "not that brand" rules out the brand asked for before, or else every brand
    shown, and drops it from the request.
    """
    said = parse(message, terms)
    slots = previous.model_dump()
    for name in ("category", "brand", "min_price", "max_price", "currency", "sort"):
        if getattr(said, name) is not None:
            slots[name] = getattr(said, name)
    if said.min_price is not None and said.max_price is None and _above(said.min_price, previous.max_price):
        slots["max_price"] = None  # a new floor above the old cap replaces the cap
    if said.max_price is not None and said.min_price is None and _above(previous.min_price, said.max_price):
        slots["min_price"] = None
    for wanted, excluded in (("brand", "exclude_brands"), ("category", "exclude_categories")):
        # the newer word wins: asked for again leaves the exclusions, newly excluded leaves the request
        kept = [name for name in getattr(previous, excluded) if name != getattr(said, wanted)]
        slots[excluded] = _added(kept, getattr(said, excluded))
        if slots[wanted] in getattr(said, excluded):
            slots[wanted] = None
    text = normalise(message)
    if _OTHER_BRAND.search(text):
        avoided = [previous.brand] if previous.brand else list(shown_brands)
        slots["exclude_brands"] = _added(slots["exclude_brands"], avoided)
        if slots["brand"] in avoided:
            slots["brand"] = None
    if _CHEAPER.search(text) and said.max_price is None:
        _cheaper(slots, shown_prices)
    elif _PRICIER.search(text) and said.min_price is None:
        _pricier(slots, shown_prices)
    if _CJK.search(text) or _LATIN_WORD.search(text):
        slots["language"] = said.language
    return Intent(**slots)


def _cheaper(slots: dict[str, Any], shown_prices: Sequence[float]) -> None:
    if shown_prices:
        slots["max_price"] = min(min(shown_prices), slots["max_price"] if slots["max_price"] is not None else 1e308)
        if slots["min_price"] is not None and slots["min_price"] > slots["max_price"]:
            slots["min_price"] = None
    else:
        slots["sort"] = "price_asc"


def _pricier(slots: dict[str, Any], shown_prices: Sequence[float]) -> None:
    if shown_prices:
        slots["min_price"] = max(max(shown_prices), slots["min_price"] or 0.0)
        if slots["max_price"] is not None and slots["max_price"] < slots["min_price"]:
            slots["max_price"] = None
    else:
        slots["sort"] = "price_desc"


def _above(low: float | None, high: float | None) -> bool:
    return low is not None and high is not None and low > high


def _added(names: Sequence[str], more: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*names, *more]))
