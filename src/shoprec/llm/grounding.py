"""What a model may say about items: only ids it was given, and only claims an item's own fields support.

Decoding under a JSON schema whose id field is an enum of the given ids makes an unknown id impossible in that
field; these checks run anyway, and on the free text too. A claim is a sentence. It is unsupported when it names
a product term the item's fields do not hold, or a number they do not hold. Product terms are the words of what
the prompt showed about products (the items, the user's history, the shopper's message) and the catalog's names:
the model can only have borrowed a term it saw, and the failure this guards against is exactly that (a pilot
credited an item with an ingredient of an item in the user's history). Words the prompt never showed as product
text ("great", "recommend") are phrasing and pass. Chinese text is checked for Latin names and numbers only:
without a word segmenter, single characters would match everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shoprec.llm.prompts.context import ItemFacts
from shoprec.llm.terms import tokens

ID_REFERENCE = re.compile(r"\[([^\[\]\s]{1,64})\]")  # an item named the way the prompts name items: "[B004756YJA]"
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？；;])\s*|\n+")
_LATIN = re.compile(r"[a-z]+")
COUNTS = frozenset(float(n) for n in range(11))  # small whole numbers count or order things; they state no fact
STOPWORDS = frozenset(
    {
        "the", "and", "for", "with", "this", "that", "these", "those", "you", "your", "yours", "our", "are", "was",
        "were", "has", "have", "had", "its", "not", "but", "all", "any", "can", "will", "may", "from", "into", "onto",
        "than", "then", "also", "very", "more", "most", "less", "such", "per", "each", "one", "both", "item",
        "product",
    }
)  # fmt: skip


def sentences(text: str) -> list[str]:
    """``text`` cut into sentences (English or Chinese punctuation, or line breaks), empty ones dropped."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def complete_sentences(text: str) -> tuple[list[str], str]:
    """The sentences of a growing ``text`` that are finished (an end mark followed by a space, a Chinese end mark,
    a line break), and the unfinished rest."""
    done = max((match.end() for match in _SENTENCE_END.finditer(text)), default=0)
    return sentences(text[:done]), text[done:]


def words(text: str | None) -> frozenset[str]:
    """The Latin content words of ``text``, normalised as catalog names are matched (lower case, plural dropped)."""
    return frozenset(
        token.text
        for token in tokens(text or "")
        if not token.mark and len(token.text) >= 3 and _LATIN.fullmatch(token.text) and token.text not in STOPWORDS
    )


def numbers(text: str | None) -> frozenset[float]:
    return frozenset(float(found.replace(",", ".")) for found in _NUMBER.findall(text or ""))


@dataclass(frozen=True)
class Evidence:
    """What a text about an item may state: the words and numbers of the item's fields."""

    words: frozenset[str] = frozenset()
    numbers: frozenset[float] = frozenset()

    def __or__(self, other: Evidence) -> Evidence:
        return Evidence(self.words | other.words, self.numbers | other.numbers)

    def union(self, others: Iterable[Evidence]) -> Evidence:
        joined = self
        for other in others:
            joined = joined | other
        return joined

    @classmethod
    def of(cls, *texts: str | None, values: Iterable[float] = ()) -> Evidence:
        joined = " ".join(text for text in texts if text)
        return cls(words(joined), numbers(joined) | {round(float(value), 2) for value in values})


def item_evidence(item: ItemFacts) -> Evidence:
    """The item's own fields: title, category path, brand, description and price."""
    prices = () if item.price is None else (item.price,)
    return Evidence.of(item.title, item.category, item.brand, item.description, values=prices)


@dataclass(frozen=True)
class Checked:
    """A text after the checks: the sentences that hold, and what was taken out."""

    text: str
    dropped_ids: tuple[str, ...]  # ids named that were not given
    unsupported: tuple[str, ...]  # sentences dropped for a claim the evidence does not support


@dataclass(frozen=True)
class ClaimChecker:
    """``vocabulary``: the product terms of one prompt (see the module docstring)."""

    vocabulary: frozenset[str]

    @classmethod
    def of(cls, product_texts: Iterable[str | None], names: Iterable[str] = ()) -> ClaimChecker:
        return cls(words(" ".join(text for text in (*product_texts, *names) if text)))

    def unsupported(self, sentence: str, support: Evidence) -> tuple[str, ...]:
        """The product terms and numbers of ``sentence`` that ``support`` lacks."""
        text = ID_REFERENCE.sub(" ", sentence)
        terms = sorted((words(text) & self.vocabulary) - support.words)
        figures = sorted(numbers(text) - support.numbers - COUNTS)
        return (*terms, *(f"{figure:g}" for figure in figures))

    def check(self, text: str, support: Evidence, allowed_ids: Sequence[str]) -> Checked:
        """``text`` without the sentences that name an id outside ``allowed_ids`` or make an unsupported claim;
        ids of ``allowed_ids`` named in brackets are kept."""
        allowed = set(allowed_ids)
        kept: list[str] = []
        dropped: list[str] = []
        unsupported: list[str] = []
        for sentence in sentences(text):
            outside = [found for found in ID_REFERENCE.findall(sentence) if found not in allowed]
            if outside:
                dropped += outside
            elif self.unsupported(sentence, support):
                unsupported.append(sentence)
            else:
                kept.append(sentence)
        return Checked(" ".join(kept), tuple(dropped), tuple(unsupported))
