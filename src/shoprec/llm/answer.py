"""A chat answer, checked as it grows: the model writes one JSON object (``answer_schema``: an intro, then picks
whose ids are an enum of the retrieved ones); ``AnswerWriter`` turns each part into shopper-facing text as soon as
the part is complete and has passed the grounding checks, so a stream never shows an unchecked word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from shoprec.llm.grounding import ClaimChecker, Evidence, words
from shoprec.llm.intent import Intent, Language, detect_language
from shoprec.llm.prompts import clip
from shoprec.llm.prompts.context import ItemFacts
from shoprec.llm.terms import CJK
from shoprec.llm.wording import display_name, money, note_phrases, phrase
from shoprec.ranking.types import Reason

# Characters of the intro and of each note: short, since every token costs time on a CPU (a Chinese character is
# about one token).
TEXT_CHARS: dict[Language, tuple[int, int]] = {"en": (100, 80), "zh": (40, 30)}
LINE_TITLE_CHARS = 80
_SPOKEN = re.compile(rf"[A-Za-z{CJK}]")
_LATIN_WORD = re.compile(r"[A-Za-z]+")


def answer_schema(ids: Sequence[str], k: int, language: Language) -> dict[str, Any]:
    """The chat answer: the intro first (the first words a stream can show), then at most ``k`` picks, each an id
    of ``ids`` (an enum: the decoder cannot write another) and a bounded note."""
    intro, note = TEXT_CHARS[language]
    pick = {
        "type": "object",
        "properties": {"id": {"enum": list(ids)}, "note": {"type": "string", "maxLength": note}},
        "required": ["id", "note"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "intro": {"type": "string", "maxLength": intro},
            "picks": {"type": "array", "items": pick, "maxItems": k},
        },
        "required": ["intro", "picks"],
        "additionalProperties": False,
    }


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
    """An item a turn shows. ``reason`` comes from the ranking and the item's fields; ``note`` is the model's
    phrasing when it passed the checks (None otherwise)."""

    item_id: str
    title: str | None
    price: float | None
    reason: str
    note: str | None
    source: Literal["llm", "ranking"]  # chosen by the model, or filled in from the ranking's order


@dataclass
class Counts:
    """What the checks took out or put in."""

    dropped_ids: int = 0  # ids named outside the retrieved set (picks and ids in the text)
    repeated: int = 0  # picks of an item already picked, or past the number shown
    unsupported_claims: int = 0  # sentences dropped for a claim the item's fields do not support
    wrong_language: int = 0  # texts of the model not in the shopper's language, replaced
    echoed: int = 0  # notes that repeat the intro or an earlier note word for word (they say nothing of the item)
    filled: int = 0  # items shown from the ranking's order after the model's picks


def language_of(text: str, names: frozenset[str] = frozenset()) -> Language | None:
    """The language of ``text`` once product names (``names``, as ``grounding.words`` gives them) are set aside:
    "这款 OPI Nail Lacquer 很亮" is Chinese. None for a text of nothing but names (or no words at all)."""
    rest = _LATIN_WORD.sub(lambda found: " " if (w := words(found.group(0))) and w <= names else found.group(0), text)
    return detect_language(rest) if _SPOKEN.search(rest) else None


def speaks(text: str, language: Language, names: frozenset[str] = frozenset()) -> bool:
    return language_of(text, names) in (None, language)


@dataclass
class AnswerWriter:
    """Feed it the model's answer object as it grows (``feed``), then ``finish``; each returns the text pieces the
    shopper may see now. The shown items, counts and answer text accumulate on the writer."""

    intent: Intent
    retrieved: Sequence[Retrieved]
    checker: ClaimChecker
    k: int
    notes: Sequence[str] = ()
    shown: list[Shown] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    pieces: list[str] = field(default_factory=list)
    model_language: Language | None = None  # of the model's intro, as written
    _intro_done: bool = False
    _picks_read: int = 0
    _written: set[str] = field(default_factory=set)  # the model's intro and notes so far, normalised

    @property
    def language(self) -> Language:
        return self.intent.language

    @property
    def answer(self) -> str:
        return "".join(self.pieces)

    def feed(self, value: Any) -> list[str]:
        """The pieces that ``value`` (the partial answer object) completes."""
        out: list[str] = []
        if not isinstance(value, dict):
            return out
        if not self._intro_done and isinstance(value.get("intro"), str):
            out.append(self._intro(value["intro"]))
        picks = value.get("picks")
        if self._intro_done and isinstance(picks, list):
            for pick in picks[self._picks_read :]:
                if not (isinstance(pick, dict) and "id" in pick and "note" in pick):
                    break  # still being written
                self._picks_read += 1
                out += self._pick(str(pick["id"]), str(pick["note"]))
        self.pieces += out
        return out

    def finish(self, fallback: bool = False) -> list[str]:
        """The rest: an opening if the model wrote none that held ("nothing matched" when nothing was retrieved, the
        fallback phrase when the model's wording is unavailable), then items in the ranking's order up to ``k``."""
        out: list[str] = []
        if not self._intro_done:
            key = "none" if not self.retrieved else "fallback" if fallback else "intro"
            out.append(self._opening(phrase(self.language, key)))
        elif fallback:
            out.append("\n" + phrase(self.language, "fallback"))
        wanted = min(self.k, len(self.retrieved))
        taken = {shown.item_id for shown in self.shown}
        for entry in self.retrieved:
            if len(self.shown) >= wanted:
                break
            if entry.facts.item_id not in taken:
                self.counts.filled += 1
                out.append(self._show(entry, None, "ranking"))
        self.pieces += out
        return out

    def _intro(self, text: str) -> str:
        self._written.add(_normalised(text))
        everything = Evidence().union(entry.evidence for entry in self.retrieved)
        self.model_language = language_of(text, everything.words)
        support = _constraint_evidence(self.intent) | everything
        checked = self.checker.check(text, support, [entry.facts.item_id for entry in self.retrieved])
        self._count(len(checked.dropped_ids), len(checked.unsupported))
        kept = checked.text
        if kept and not speaks(kept, self.language, everything.words):
            self.counts.wrong_language += 1
            kept = ""
        return self._opening(kept or phrase(self.language, "intro"))

    def _opening(self, text: str) -> str:
        self._intro_done = True
        return " ".join([text, *note_phrases(self.notes, self.language)])

    def _pick(self, item_id: str, note: str) -> list[str]:
        entry = next((e for e in self.retrieved if e.facts.item_id == item_id), None)
        if entry is None:
            self.counts.dropped_ids += 1
            return []
        if any(shown.item_id == item_id for shown in self.shown) or len(self.shown) >= self.k:
            self.counts.repeated += 1
            return []
        if _normalised(note) in self._written:
            self.counts.echoed += 1
            return [self._show(entry, None, "llm")]
        self._written.add(_normalised(note))
        checked = self.checker.check(note, entry.evidence, [item_id])
        self._count(len(checked.dropped_ids), len(checked.unsupported))
        kept: str | None = checked.text or None
        if kept and not speaks(kept, self.language, entry.evidence.words):
            self.counts.wrong_language += 1
            kept = None
        return [self._show(entry, kept, "llm")]

    def _show(self, entry: Retrieved, note: str | None, source: Literal["llm", "ranking"]) -> str:
        facts = entry.facts
        self.shown.append(Shown(facts.item_id, facts.title, facts.price, entry.reason, note, source))
        title = clip(display_name(facts), LINE_TITLE_CHARS)
        price = f" ({money(facts.price)})" if facts.price is not None else ""
        return f"\n• {title}{price} — {note or entry.reason}"

    def _count(self, dropped: int, unsupported: int) -> None:
        self.counts.dropped_ids += dropped
        self.counts.unsupported_claims += unsupported


def _normalised(text: str) -> str:
    return " ".join(text.casefold().split())


def _constraint_evidence(intent: Intent) -> Evidence:
    """What an intro may restate of the request: the names and bounds the ranking applied."""
    bounds = [bound for bound in (intent.min_price, intent.max_price) if bound is not None]
    return Evidence.of(intent.category, intent.brand, *intent.exclude_brands, *intent.exclude_categories, values=bounds)
