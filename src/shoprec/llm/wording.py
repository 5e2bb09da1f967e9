"""The assistant's own words, in the shopper's language: fixed phrases, and each shown item's one-line reason built
from the ranking's structured reasons and the item's catalog fields (never written by the model)."""

from __future__ import annotations

from collections.abc import Sequence

from shoprec.data.dataset import levels
from shoprec.llm.intent import Intent, Language
from shoprec.llm.prompts import clip
from shoprec.llm.prompts.context import ItemFacts
from shoprec.ranking.items import ItemIndex
from shoprec.ranking.stages import BRAND_NOT_APPLIED, PRICE_NOT_APPLIED
from shoprec.ranking.types import Reason

TITLE_CHARS = 60  # a title quoted inside a reason
PHRASES: dict[Language, dict[str, str]] = {
    "en": {
        "intro": "Here is what I found for you:",
        "none": "Nothing in the catalog matches this request; try loosening one of its constraints.",
        "fallback": "(The assistant's comment is unavailable right now: the items above are the ranking's, with its "
        "reasons.)",
        "not_stated": "Not stated in the product information.",
        "no_prices": "This catalog lists no prices, so the price limit could not be checked.",
        "no_brands": "This catalog lists no brands, so the brand request could not be checked.",
        "similar_filled": "The model chose {chosen} of {k}; the other {filled} follow the ranking's order.",
        "sep": "; ",
    },
    "zh": {
        "intro": "为你找到以下商品：",
        "none": "目录中没有符合这些条件的商品，可以放宽某个条件再试。",
        "fallback": "（助手暂时无法评论：以上是排序结果及其理由。）",
        "not_stated": "商品信息中未提及（未说明）。",
        "no_prices": "该目录没有价格信息，无法按价格筛选。",
        "no_brands": "该目录没有品牌信息，无法按品牌筛选。",
        "similar_filled": "模型选了 {chosen} 件（共需 {k} 件），其余 {filled} 件按排序结果补足。",
        "sep": "；",
    },
}
_NOTES = {PRICE_NOT_APPLIED: "no_prices", BRAND_NOT_APPLIED: "no_brands"}


def phrase(language: Language, key: str, **values: object) -> str:
    return PHRASES[language][key].format(**values)


def note_phrases(notes: Sequence[str], language: Language) -> list[str]:
    """The ranking's notes for the shopper: the known ones in the shopper's language, any other as the ranking
    wrote it."""
    return [phrase(language, _NOTES[note]) if note in _NOTES else note for note in notes]


def display_name(item: ItemFacts) -> str:
    """The title, else brand and leaf category (a catalog without titles), else the id."""
    if item.title:
        return item.title
    named = " ".join(part for part in (item.brand, (levels(item.category) or ("",))[-1]) if part)
    return named or f"[{item.item_id}]"


def money(price: float) -> str:
    return f"{price:.2f}"


def reason_line(items: ItemIndex, index: int, reasons: Sequence[Reason], intent: Intent, language: Language) -> str:
    """One line: the item's leaf category, brand and price (with the bound it met), then its strongest reasons."""
    item = items.items[index]
    fields = []
    if item is not None and levels(item.category):
        fields.append(levels(item.category)[-1])
    if item is not None and item.brand:
        fields.append(item.brand)
    price = items.price(index)
    if price is not None:
        fields.append(_price(price, intent, language))
    why = _why(items, reasons, language)
    head = " · ".join(fields)
    return f"{head} — {why}" if head and why else head or why


def _price(price: float, intent: Intent, language: Language) -> str:
    label = "价格 " if language == "zh" else ""
    bound = ""
    if intent.max_price is not None and price <= intent.max_price:
        bound = f" ≤ {intent.max_price:g}"
    elif intent.min_price is not None and price >= intent.min_price:
        bound = f" ≥ {intent.min_price:g}"
    return f"{label}{money(price)}{bound}"


def _why(items: ItemIndex, reasons: Sequence[Reason], language: Language) -> str:
    """The query words matched, then the two strongest other reasons, each said once."""
    zh = language == "zh"
    matched = [r.detail for r in reasons if r.kind == "query" and r.detail]
    parts: list[str] = []
    if matched:
        quoted = "、".join(f"“{word}”" for word in matched) if zh else ", ".join(f'"{word}"' for word in matched)
        parts.append(f"匹配{quoted}" if zh else f"matches {quoted}")
    others = sorted((r for r in reasons if r.kind not in ("query", "attribute")), key=lambda r: -r.share)
    for reason in others[:2]:
        said = _said(items, reason, zh)
        if said and said not in parts:
            parts.append(said)
    if any(r.kind == "attribute" and (r.detail or "").startswith("same category") for r in reasons):
        parts.append("同类商品" if zh else "same category")
    return PHRASES[language]["sep"].join(parts)


def _said(items: ItemIndex, reason: Reason, zh: bool) -> str | None:
    title = None if reason.item is None else items.title(reason.item)
    quoted = None if title is None else clip(title, TITLE_CHARS)
    if reason.kind == "history" and quoted:
        return f"与你历史中的“{quoted}”相近" if zh else f'like "{quoted}" in your history'
    if reason.kind == "history":
        return "符合你的历史偏好" if zh else "fits your history"
    if reason.kind == "similar" and quoted:
        return f"与“{quoted}”相似" if zh else f'similar to "{quoted}"'
    if reason.kind == "popular":
        return "热门商品" if zh else "popular with shoppers"
    return None
