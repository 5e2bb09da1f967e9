"""What each prompt is rendered from: small frozen records, filled from the catalog and the ranking, never free text
assembled by hand. Each context names its template and the tokens an answer may name (item ids or letters)."""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import ClassVar

from shoprec.llm.intent import Intent, Language


@dataclass(frozen=True)
class ItemFacts:
    """One item as a prompt shows it: catalog fields, None where the catalog has none."""

    item_id: str
    title: str | None = None
    category: str | None = None  # path, "Beauty > Makeup > Nails > Nail Polish"
    brand: str | None = None
    price: float | None = None
    currency: str | None = None  # of ``price``, when the catalog says
    description: str | None = None


@dataclass(frozen=True)
class HistoryEvent:
    item: ItemFacts
    timestamp: float | None = None  # unix seconds; None when the data has only the order
    event: str | None = None  # view, cart, purchase ...; None when the data does not say


@dataclass(frozen=True)
class HistoryWindow:
    """Which past events a prompt shows: those of the last ``days`` before the moment of the request when the data
    has timestamps, else the last ``count`` (also the cap with timestamps, to bound the prompt)."""

    days: int = 183  # six months
    count: int = 20


@dataclass(frozen=True)
class Preferences:
    """What the shown history says of the user's taste: most frequent categories and brands, the prices paid."""

    categories: tuple[tuple[str, int], ...] = ()  # (leaf category, events), most frequent first
    brands: tuple[tuple[str, int], ...] = ()
    prices: tuple[float, float] | None = None  # (lowest, highest) of the priced events


@dataclass(frozen=True)
class ReasonFacts:
    """One structured reason of the ranking (``ranking.types.Reason``) with the title of the item it names."""

    kind: str
    share: float
    detail: str | None = None
    item_title: str | None = None


@dataclass(frozen=True)
class SimilarContext:
    """Recommend ``k`` of ``candidates`` like ``viewed``, from the user's recent history and preferences."""

    TEMPLATE: ClassVar[str] = "similar"
    viewed: ItemFacts
    history: tuple[HistoryEvent, ...]
    window: HistoryWindow
    timed: bool  # the history was cut by time (the data has timestamps), not by count
    preferences: Preferences
    candidates: tuple[ItemFacts, ...]
    k: int = 5

    def __post_init__(self) -> None:
        if not 1 <= self.k <= len(self.candidates):
            raise ValueError(f"k={self.k} needs at least that many candidates, got {len(self.candidates)}")

    def allowed(self) -> tuple[str, ...]:
        return tuple(item.item_id for item in self.candidates)


@dataclass(frozen=True)
class IntentContext:
    """Read a search query into an ``Intent``; ``categories``/``brands`` are catalog names the model may use."""

    TEMPLATE: ClassVar[str] = "intent"
    query: str
    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()

    def allowed(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class RewriteContext:
    """Rewrite a search query into the catalog's language, worded as the catalog names products; ``examples``
    adds the template's worked examples (few-shot) to the instruction."""

    TEMPLATE: ClassVar[str] = "rewrite"
    query: str
    target: Language = "en"
    examples: bool = True

    def allowed(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True)
class ChatContext:
    """One assistant turn: the shopper's message, the constraints the ranking applied for it (the conversation's so
    far), the items it shows (already chosen: the model remarks on them, it picks none) and what the ranking could
    not apply (``notes``)."""

    TEMPLATE: ClassVar[str] = "chat"
    message: str
    language: Language
    intent: Intent
    items: tuple[ItemFacts, ...]
    notes: tuple[str, ...] = ()

    def allowed(self) -> tuple[str, ...]:
        return tuple(item.item_id for item in self.items)


@dataclass(frozen=True)
class ExplainContext:
    """Why one item was recommended, from its ranking reasons and its fields."""

    TEMPLATE: ClassVar[str] = "explain"
    item: ItemFacts
    reasons: tuple[ReasonFacts, ...]
    language: Language

    def allowed(self) -> tuple[str, ...]:
        return (self.item.item_id,)


@dataclass(frozen=True)
class AskContext:
    """A shopper's question about one item, answered from its fields only."""

    TEMPLATE: ClassVar[str] = "ask"
    item: ItemFacts
    question: str
    language: Language

    def allowed(self) -> tuple[str, ...]:
        return (self.item.item_id,)


@dataclass(frozen=True)
class RerankContext:
    """LlamaRec's verbalizer: the history's titles and candidates labelled A, B, C ...; the answer is one letter."""

    TEMPLATE: ClassVar[str] = "rerank"
    history: tuple[ItemFacts, ...]
    candidates: tuple[ItemFacts, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.candidates) <= len(string.ascii_uppercase):
            raise ValueError(f"rerank takes 1 to 26 candidates (one letter each), got {len(self.candidates)}")

    def allowed(self) -> tuple[str, ...]:
        return tuple(string.ascii_uppercase[: len(self.candidates)])


Context = SimilarContext | IntentContext | RewriteContext | ChatContext | ExplainContext | AskContext | RerankContext
