"""The catalog's own names for its brands and product types, found in a query, with the ones it rules out.

A query names a brand or category the way the catalog does, give or take case, plurals and "&" for "and", so names
are matched on normalised tokens: a Latin word is one token (lower-cased, plural ending dropped), a Chinese
character is one token (Chinese has no spaces, so a name may start at any character). The longest name starting
leftmost wins ("nail polish" over "nail", "运动鞋" over "鞋"). A name is ruled out when a negation comes right before
it ("not", "no", "except", "不要", "除了" ...) or, in Chinese, right after it ("迪奥的不要", "耐克除外"); a name joined
to a ruled-out one by "or", "and", ",", "和", "、" is ruled out too ("no OPI or Essie").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from shoprec.data.dataset import Dataset, levels
from shoprec.llm.prices import normalise

if TYPE_CHECKING:  # ranking loads torch (seconds); the rules need none of it
    from shoprec.ranking.items import ItemIndex

Kind = Literal["brand", "category"]
CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Chinese characters, as a regex class body
_LETTER = rf"(?:(?![{CJK}])[^\W_])"  # a letter or digit that is not a Chinese character
_TOKEN = re.compile(rf"(?P<cjk>[{CJK}])|(?P<word>{_LETTER}+(?:'{_LETTER}+)*)|(?P<mark>[^\w\s])")
_STOP_MARKS = frozenset(",;.!?，、；。！？")  # a negation does not reach across these (except to chain a list)


def _stem(word: str) -> str:
    """An English word without its possessive or plural ending, so "Shampoos" and "shampoo" meet."""
    word = word.removesuffix("'s")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "ches", "shes", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word if len(word) > 4 and word.endswith(("us", "is")) else word[:-1]  # "status", "analysis"; "cpus"
    return word


@dataclass(frozen=True)
class Token:
    text: str  # normalised: a stemmed lower-case word, one Chinese character, or one punctuation mark
    mark: bool  # punctuation
    start: int  # character offsets in the normalised text: tokens with a space between them do not touch
    end: int


def tokens(text: str) -> list[Token]:
    out = []
    for match in _TOKEN.finditer(normalise(text).casefold().replace("’", "'")):
        span = match.start(), match.end()
        if match.group("word"):
            out.append(Token(_stem(match.group("word")), False, *span))
        elif match.group("cjk"):
            out.append(Token(match.group("cjk"), False, *span))
        elif match.group(0) == "&":
            out.append(Token("and", False, *span))
        else:
            out.append(Token(match.group(0), True, *span))
    return out


def _key(text: str) -> tuple[str, ...]:
    """A name's words: punctuation inside a name ("dr.ci#labo", "Creams, Gels & Lotions") is not matched."""
    return tuple(token.text for token in tokens(text) if not token.mark)


def _phrases(*phrases: str) -> tuple[tuple[str, ...], ...]:
    """Trigger phrases as token tuples, punctuation kept; longer ones first so "anything but" wins over "but"."""
    return tuple(sorted({tuple(token.text for token in tokens(phrase)) for phrase in phrases}, key=len, reverse=True))


_BEFORE = _phrases(
    "not", "no", "nor", "non", "without", "except", "excluding", "exclude", "avoid", "other than", "anything but",
    "but not", "never", "don't want", "dont want", "do not want", "don't like", "hate",
    "不要", "除了", "别", "不想要", "排除", "非", "不含", "不是", "不喜欢", "不买", "拒绝", "去掉", "除去", "不考虑",
    "不用",
)  # fmt: skip
_AFTER = _phrases("除外", "的不要", "不要了", "就算了", "不考虑", "excluded")
# Words that may stand between a negation and the name ("no products from OPI", "别给我推荐耐克"). Not "的": "别的口红"
# is "other lipsticks".
_FILLER = _phrases(
    "any", "the", "a", "an", "from", "by", "brand", "of", "for", "made", "product", "item", "stuff", "more",
    "任何", "品牌", "牌子", "这个", "那个", "这种", "那种", "买", "推荐", "给我", "再", "一切", "所有",
)  # fmt: skip
_JOINERS = _phrases("or", "and", "nor", ",", "、", "和", "或", "或者", "跟", "及", "也不要", "/")
_LIST = tuple(sorted({*_JOINERS, *_FILLER, ("的",)}, key=len, reverse=True))  # what may join two ruled-out names


@dataclass(frozen=True)
class Mention:
    """One catalog name found in a query."""

    kind: Kind | Literal["both"]  # "both": the catalog uses the name for a brand and for a category
    name: str  # as the catalog spells it
    excluded: bool


def _strip_end(gap: list[str], phrases: Sequence[tuple[str, ...]]) -> list[str]:
    """``gap`` without trailing phrases from ``phrases`` (repeatedly)."""
    changed = True
    while changed and gap:
        changed = False
        for phrase in phrases:
            if len(phrase) <= len(gap) and tuple(gap[-len(phrase) :]) == phrase:
                gap = gap[: -len(phrase)]
                changed = True
                break
    return gap


def _ends_with(gap: list[str], phrases: Sequence[tuple[str, ...]]) -> bool:
    return any(len(p) <= len(gap) and tuple(gap[-len(p) :]) == p for p in phrases)


def _starts_with(gap: list[str], phrases: Sequence[tuple[str, ...]]) -> bool:
    return any(len(p) <= len(gap) and tuple(gap[: len(p)]) == p for p in phrases)


@dataclass(frozen=True)
class CatalogTerms:
    """The brand and category names of one catalog: the vocabulary query rules may recognise."""

    categories: tuple[str, ...]
    brands: tuple[str, ...]

    @classmethod
    def of(cls, categories: Iterable[str], brands: Iterable[str]) -> CatalogTerms:
        """Distinct names, stripped, empty ones dropped, first spelling kept."""
        return cls(_distinct(categories), _distinct(brands))

    @classmethod
    def of_dataset(cls, dataset: Dataset) -> CatalogTerms:
        """Every level of the catalog's category paths except those covering more than half the items (the root,
        such as "Beauty" in a beauty shop, names no product type), and every brand."""
        paths = [levels(value) if isinstance(value, str) else () for value in dataset.catalog["category"]]
        counts: dict[str, int] = {}
        for path in paths:
            for level in dict.fromkeys(path):  # in path order: the names' order is the same every run
                counts[level] = counts.get(level, 0) + 1
        brands = [value for value in dataset.catalog["brand"] if isinstance(value, str)]
        return cls.of([name for name, n in counts.items() if n <= len(paths) / 2], brands)

    @classmethod
    def of_items(cls, items: ItemIndex) -> CatalogTerms:
        """The live catalog's query categories and the brands of its records."""
        return cls.of(items.query_categories, (item.brand for item in items.items if item and item.brand))

    @functools.cached_property
    def _names(self) -> dict[tuple[str, ...], tuple[Kind | Literal["both"], str]]:
        names: dict[tuple[str, ...], tuple[Kind | Literal["both"], str]] = {}
        kinds: tuple[tuple[Kind, tuple[str, ...]], ...] = (("category", self.categories), ("brand", self.brands))
        for kind, values in kinds:
            for name in values:
                key = _key(name)
                if key and key in names and names[key][0] != kind:
                    names[key] = ("both", names[key][1])
                elif key:
                    names.setdefault(key, (kind, name))
        return names

    @functools.cached_property
    def _longest(self) -> int:
        return max(map(len, self._names), default=0)

    def find(self, text: str) -> list[Mention]:
        """The catalog names in ``text``, left to right, each marked whether the text rules it out."""
        found = tokens(text)
        at = [j for j, token in enumerate(found) if not token.mark]  # names are matched on words alone
        words = [found[j].text for j in at]
        named: list[tuple[int, int, Kind | Literal["both"], str]] = []  # (start, end) in ``found``, kind, name
        i = 0
        while i < len(words):
            for length in range(min(self._longest, len(words) - i), 0, -1):
                entry = self._names.get(tuple(words[i : i + length]))
                if entry is not None and (length > 1 or _ends_noun(found, at[i])):
                    named.append((at[i], at[i + length - 1] + 1, *entry))
                    i += length
                    break
            else:
                i += 1
        texts = [token.text for token in found]
        mentions: list[Mention] = []
        for k, (start, end, kind, name) in enumerate(named):
            previous_end = named[k - 1][1] if k else 0
            next_start = named[k + 1][0] if k + 1 < len(named) else len(found)
            joined = bool(mentions) and mentions[-1].excluded and _joined(texts[previous_end:start])
            excluded = joined or _negated(texts[previous_end:start], texts[end:next_start])
            mentions.append(Mention(kind, name, excluded))
        return mentions


def _ends_noun(found: list[Token], j: int) -> bool:
    """A one-character Chinese name counts only where a noun ends: Chinese puts the head of a noun last, so "包" is a
    bag in "耐克的包" but not in "包邮" (free shipping) or "包装" (packaging)."""
    following = found[j + 1] if j + 1 < len(found) and found[j + 1].start == found[j].end else None
    return not (_is_cjk(found[j].text) and following is not None and _is_cjk(following.text) and following.text != "的")


def _is_cjk(text: str) -> bool:
    return len(text) == 1 and bool(re.match(f"[{CJK}]", text))


def _joined(gap: list[str]) -> bool:
    """Whether ``gap`` is only list joiners and fillers, with at least one joiner ("or", ", the", "和")."""
    saw_joiner = False
    while gap:
        phrase = next((p for p in _LIST if tuple(gap[-len(p) :]) == p), None)
        if phrase is None:
            return False
        saw_joiner = saw_joiner or phrase in _JOINERS
        gap = gap[: -len(phrase)]
    return saw_joiner


def _negated(before: list[str], after: list[str]) -> bool:
    """A negation ends the clause before the name (fillers aside), or a Chinese one follows it."""
    stop = max((j for j, text in enumerate(before) if text in _STOP_MARKS), default=-1)
    clause = [text for text in before[stop + 1 :] if text[0].isalnum()]  # "except (STCC)": brackets aside
    return _ends_with(_strip_end(clause, _FILLER), _BEFORE) or _starts_with(after, _AFTER)


def _distinct(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(name.strip() for name in names if name and name.strip()))
