"""A chat answer in two parts. First the items the ranking chose, each with its one-line reason from the ranking's
structured reasons and the item's fields: shown at once, no model needed. Then the model's short remark about those
items, one sentence at a time, each shown only after it passed the grounding checks (ids, claims, language), so a
stream never shows an unchecked word.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from shoprec.llm.grounding import ClaimChecker, Evidence, words
from shoprec.llm.intent import Intent, Language, detect_language
from shoprec.llm.prompts import clip
from shoprec.llm.prompts.context import ItemFacts
from shoprec.llm.terms import CJK
from shoprec.llm.wording import display_name, money, note_phrases, phrase
from shoprec.ranking.types import Reason

REMARK_SENTENCES = 2  # a short answer: reading the model stops after this many sentences
LINE_TITLE_CHARS = 80
_SPOKEN = re.compile(rf"[A-Za-z{CJK}]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")
_ITEM_LINE = re.compile(r"\|\s*(?:category|brand|price)\s*:|类别\s*[:：]")  # the prompt's item-line fields


@dataclass(frozen=True)
class Retrieved:
    """One item the ranking retrieved for a turn, with everything the answer may say of it."""

    index: int
    facts: ItemFacts
    reasons: tuple[Reason, ...]
    reason: str  # the one-line reason (``wording.reason_line``)
    evidence: Evidence  # the item's own fields


@dataclass(frozen=True)
class Shown:
    """An item a turn shows, with its one-line reason from the ranking and the item's fields."""

    item_id: str
    title: str | None
    price: float | None
    reason: str


@dataclass
class Counts:
    """What the checks took out of the model's remark."""

    dropped_ids: int = 0  # ids named outside the shown items
    unsupported_claims: int = 0  # sentences dropped for a claim the shown items' fields do not support
    wrong_language: int = 0  # sentences not in the shopper's language, dropped
    echoed: int = 0  # sentences dropped for reciting an item's line of the prompt or the shopper's message


def language_of(text: str, names: frozenset[str] = frozenset()) -> Language | None:
    """The language of ``text`` once product names (``names``, as ``grounding.words`` gives them) are set aside:
    "这款 OPI Nail Lacquer 很亮" is Chinese. None for a text of nothing but names (or no words at all)."""
    rest = _LATIN_WORD.sub(lambda found: " " if (w := words(found.group(0))) and w <= names else found.group(0), text)
    return detect_language(rest) if _SPOKEN.search(rest) else None


def speaks(text: str, language: Language, names: frozenset[str] = frozenset()) -> bool:
    return language_of(text, names) in (None, language)


@dataclass
class AnswerWriter:
    """``listing`` first (the items, at once), then ``remark`` for each sentence the model completes, then
    ``fallback`` if the model failed; each returns the text the shopper may see now. The shown items, counts and
    answer text accumulate on the writer."""

    intent: Intent
    items: Sequence[Retrieved]  # the items shown, in order
    checker: ClaimChecker
    notes: Sequence[str] = ()
    message: str = ""  # the shopper's, which a remark must not merely repeat
    shown: list[Shown] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    pieces: list[str] = field(default_factory=list)
    read: list[str] = field(default_factory=list)  # the model's sentences as written
    remarks: int = 0  # the model's sentences shown

    @property
    def language(self) -> Language:
        return self.intent.language

    @property
    def answer(self) -> str:
        return "".join(self.pieces)

    @property
    def model_language(self) -> Language | None:
        """The language of the model's remark as written, names set aside (None: it wrote none)."""
        return language_of(" ".join(self.read), self._everything.words) if self.read else None

    @functools.cached_property
    def _everything(self) -> Evidence:
        """What the shown items' fields hold (the items are fixed when the writer is made)."""
        return Evidence().union(entry.evidence for entry in self.items)

    @functools.cached_property
    def _support(self) -> Evidence:
        """What a remark may state: the shown items' fields and the request's constraints."""
        return _constraint_evidence(self.intent) | self._everything

    def listing(self) -> str:
        """The opening ("nothing matched" without items) and the ranking's notes, then one line per item."""
        opening = " ".join(
            [phrase(self.language, "intro" if self.items else "none"), *note_phrases(self.notes, self.language)]
        )
        return self._say(opening + "".join(self._show(entry) for entry in self.items))

    def remark(self, sentence: str) -> str | None:
        """One sentence of the model's, as the shopper sees it; None when the checks drop it. It may restate the
        request's constraints and anything the shown items' fields hold."""
        self.read.append(sentence)
        if _echoes(sentence, self.message):
            self.counts.echoed += 1
            return None
        checked = self.checker.check(sentence, self._support, [entry.facts.item_id for entry in self.items])
        self.counts.dropped_ids += len(checked.dropped_ids)
        self.counts.unsupported_claims += len(checked.unsupported)
        if not checked.text:
            return None
        if not speaks(checked.text, self.language, self._everything.words):
            self.counts.wrong_language += 1
            return None
        self.remarks += 1
        return self._say(("\n" if self.remarks == 1 else " ") + checked.text)

    def fallback(self) -> str:
        """Said when the model's remark is missing (slow or broken model): the items above stand on their own."""
        return self._say("\n" + phrase(self.language, "fallback"))

    def _say(self, piece: str) -> str:
        self.pieces.append(piece)
        return piece

    def _show(self, entry: Retrieved) -> str:
        facts = entry.facts
        self.shown.append(Shown(facts.item_id, facts.title, facts.price, entry.reason))
        title = clip(display_name(facts), LINE_TITLE_CHARS)
        price = f" ({money(facts.price)})" if facts.price is not None else ""
        return f"\n• {title}{price} — {entry.reason}"


def _echoes(sentence: str, message: str) -> bool:
    """A sentence that recites an item's line of the prompt ("… | category: …") or repeats the shopper's message
    says nothing; the 1.5B model wrote one in 64 of 172 remarks (docs/llm.md)."""
    if _ITEM_LINE.search(sentence):
        return True
    said, asked = _bare(sentence), _bare(message)  # the message, or most of the sentence being the message
    return bool(asked) and (said in asked or (asked in said and len(asked) >= 0.6 * len(said)))


def _bare(text: str) -> str:
    return "".join(character for character in text.casefold() if character.isalnum())


def _constraint_evidence(intent: Intent) -> Evidence:
    """What a remark may restate of the request: the names and bounds the ranking applied."""
    bounds = [bound for bound in (intent.min_price, intent.max_price) if bound is not None]
    return Evidence.of(intent.category, intent.brand, *intent.exclude_brands, *intent.exclude_categories, values=bounds)
