"""Prompt contexts from real data: a Dataset's catalog rows and histories (timestamps and event types when the data
has them), store records, and the ranking's structured reasons."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from shoprec.data.dataset import Dataset, levels
from shoprec.llm.prompts.context import (
    HistoryEvent,
    HistoryWindow,
    ItemFacts,
    Preferences,
    ReasonFacts,
    RerankContext,
    SimilarContext,
)
from shoprec.ranking.items import ItemIndex
from shoprec.ranking.types import Reason
from shoprec.storage.store import CatalogItem

DAY = 86_400.0  # seconds
PREFERENCES_KEPT = 3  # most frequent categories / brands a prompt names


def item_facts(dataset: Dataset, index: int, currency: str | None = None) -> ItemFacts:
    """The catalog fields of item ``index`` (missing values, NaN included, become None)."""
    row = dataset.catalog.loc[index]
    price = row["price"]
    return ItemFacts(
        item_id=dataset.items.id_of(index),
        title=_text(row["title"]),
        category=_text(row["category"]),
        brand=_text(row["brand"]),
        price=float(price) if isinstance(price, (int, float)) and not math.isnan(price) else None,
        currency=currency,
        description=_text(row["description"]),
    )


def catalog_item_facts(item: CatalogItem, currency: str | None = None) -> ItemFacts:
    """A store (or live catalog) record as a prompt shows it."""
    return ItemFacts(item.item_id, item.title, item.category, item.brand, item.price, currency, item.description)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def events_of(dataset: Dataset, row: int, currency: str | None = None) -> list[HistoryEvent]:
    """Every event of sequence row ``row``, oldest first."""
    start, stop = int(dataset.sequences.indptr[row]), int(dataset.sequences.indptr[row + 1])
    stamps = dataset.sequences.timestamps
    kinds = dataset.event_types
    return [
        HistoryEvent(
            item_facts(dataset, int(dataset.sequences.items[j]), currency),
            None if stamps is None else float(stamps[j]),
            None if kinds is None else str(kinds[j]),
        )
        for j in range(start, stop)
    ]


def recent(events: Sequence[HistoryEvent], until: float | None, window: HistoryWindow) -> tuple[HistoryEvent, ...]:
    """The events a prompt shows, oldest first: with timestamps, those in the ``window.days`` before ``until``;
    always at most the last ``window.count``."""
    if until is not None and all(event.timestamp is not None for event in events):
        start = until - window.days * DAY
        events = [event for event in events if start <= (event.timestamp or 0.0) <= until]
    return tuple(events[-window.count :])


def preferences(history: Sequence[HistoryEvent]) -> Preferences:
    """The categories (deepest level) and brands a history holds most often, and the range of prices in it."""
    categories = Counter(levels(event.item.category)[-1] for event in history if levels(event.item.category))
    brands = Counter(event.item.brand for event in history if event.item.brand)
    prices = [event.item.price for event in history if event.item.price is not None]
    return Preferences(
        categories=tuple(categories.most_common(PREFERENCES_KEPT)),
        brands=tuple(brands.most_common(PREFERENCES_KEPT)),
        prices=(min(prices), max(prices)) if prices else None,
    )


def similar_context(
    dataset: Dataset,
    row: int,
    position: int,
    candidates: Sequence[int],
    k: int = 5,
    window: HistoryWindow | None = None,
    currency: str | None = None,
) -> SimilarContext:
    """The user of sequence row ``row`` views their ``position``-th item; ``candidates`` are item indices (from
    the ranking) the model may choose from. The history is what came before that view."""
    window = window or HistoryWindow()
    events = events_of(dataset, row, currency)
    if not 0 <= position < len(events):
        raise IndexError(f"row {row} has {len(events)} events, no position {position}")
    viewed = events[position]
    history = recent(events[:position], viewed.timestamp, window)
    return SimilarContext(
        viewed=viewed.item,
        history=history,
        window=window,
        timed=viewed.timestamp is not None,
        preferences=preferences(history),
        candidates=tuple(item_facts(dataset, int(index), currency) for index in candidates),
        k=k,
    )


def rerank_context(
    dataset: Dataset, row: int, position: int, candidates: Sequence[int], window: HistoryWindow | None = None
) -> RerankContext:
    """The history before the ``position``-th event of row ``row`` and ``candidates`` (item indices) to pick from."""
    events = events_of(dataset, row)
    until = events[position].timestamp if position < len(events) else None  # position = len: after it all
    history = recent(events[:position], until, window or HistoryWindow())
    return RerankContext(
        history=tuple(event.item for event in history),
        candidates=tuple(item_facts(dataset, int(index)) for index in candidates),
    )


def ranking_rerank_context(items: ItemIndex, history: np.ndarray, candidates: np.ndarray, count: int) -> RerankContext:
    """The same prompt from a ranking's item view: the last ``count`` history items (a ranking request has no
    timestamps) and ``candidates`` in the order given (item indices)."""
    shown = history[-count:] if count else history[:0]
    return RerankContext(
        history=tuple(ItemFacts(items.ids[int(i)], items.title(int(i))) for i in shown),
        candidates=tuple(ItemFacts(items.ids[int(i)], items.title(int(i))) for i in candidates),
    )


def content_free_rerank_context(n: int) -> RerankContext:
    """The rerank prompt with no history and ``n`` untitled candidates: what the model answers from the letters
    alone (its position prior, as in Zhao et al., "Calibrate before use", ICML 2021)."""
    return RerankContext(history=(), candidates=tuple(ItemFacts(item_id=f"none-{i}") for i in range(n)))


def reason_facts(reasons: Sequence[Reason], title: Callable[[int], str | None]) -> tuple[ReasonFacts, ...]:
    """The ranking's reasons with the title of the item each names (``title``: ``Dataset.title`` offline,
    ``ItemIndex.title`` in serving)."""
    return tuple(
        ReasonFacts(
            kind=reason.kind,
            share=reason.share,
            detail=reason.detail,
            item_title=None if reason.item is None else title(reason.item),
        )
        for reason in reasons
    )
