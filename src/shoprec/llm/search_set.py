"""A labelled search set for Chinese and English shoppers on the English Amazon Beauty catalog: everyday product
intents, each worded several ways in both languages, and a judge that reads relevance off the catalog's own words.

A result is relevant to an intent when its title or its category path contains one of the intent's keywords
(whole words, any case, a plural "s"/"es" allowed): the judge needs no human labels and reads every result the same
way whichever language asked. It is strict about the product type and blind to the rest ("moisturizer for dry skin"
counts any moisturizer), so it measures whether a search finds the kind of product asked for.

Intents are split into a dev and a test half with a seeded shuffle: choices (prompt wording, decoding) are made on
dev, and test is reported apart.
"""

from __future__ import annotations

import html
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from shoprec.llm.intent import Language

Split = Literal["dev", "test"]


@dataclass(frozen=True)
class ShopIntent:
    """One product a shopper looks for, the catalog words that name it, and how shoppers ask for it."""

    name: str
    keywords: tuple[str, ...]  # English, as the catalog's titles and category paths say it
    en: tuple[str, ...]
    zh: tuple[str, ...]

    def wordings(self, language: Language) -> tuple[str, ...]:
        return self.en if language == "en" else self.zh


# Every keyword below finds at least 30 items of Amazon Beauty (checked by the tests), so ten relevant results exist.
INTENTS: tuple[ShopIntent, ...] = (
    ShopIntent("nail polish", ("nail polish", "nail lacquer", "nail color", "nail colour", "nail enamel"),
               ("nail polish", "red nail polish", "glitter nail lacquer"),
               ("指甲油", "红色指甲油", "亮片甲油")),
    ShopIntent("nail polish remover", ("nail polish remover", "polish remover", "nail remover"),
               ("nail polish remover", "acetone free polish remover", "something to take off nail polish"),
               ("洗甲水", "无丙酮洗甲水", "卸甲液")),
    ShopIntent("shampoo", ("shampoo",),
               ("shampoo", "shampoo for oily hair", "sulfate free shampoo"),
               ("洗发水", "控油洗发水", "无硫酸盐洗发露")),
    ShopIntent("conditioner", ("conditioner",),
               ("hair conditioner", "conditioner for dry hair", "leave-in conditioner"),
               ("护发素", "干发用的护发素", "免洗护发素")),
    ShopIntent("sunscreen", ("sunscreen", "sunblock", "sun block", "Skin Protection"),
               ("sunscreen", "spf 50 sunscreen for face", "waterproof sunblock"),
               ("防晒霜", "脸部用的SPF50防晒", "防水防晒乳")),
    ShopIntent("lipstick", ("lipstick", "lip color", "lip colour"),
               ("lipstick", "matte red lipstick", "long lasting lip color"),
               ("口红", "哑光正红色口红", "持久不掉色的口红")),
    ShopIntent("face moisturizer", ("face moisturizer", "facial moisturizer", "face cream", "facial cream",
                                    "Creams & Moisturizers", "day cream", "night cream"),
               ("moisturizer for dry skin", "face cream for dry skin", "hydrating facial moisturizer"),
               ("干皮保湿面霜", "适合干性皮肤的面霜", "补水保湿面霜")),
    ShopIntent("mascara", ("mascara",),
               ("mascara", "waterproof mascara", "lengthening mascara"),
               ("睫毛膏", "防水睫毛膏", "纤长睫毛膏")),
    ShopIntent("eyeliner", ("eyeliner", "eye liner"),
               ("eyeliner", "black liquid eyeliner", "waterproof eye liner pencil"),
               ("眼线笔", "黑色眼线液", "防水眼线")),
    ShopIntent("foundation", ("foundation",),
               ("foundation", "liquid foundation for oily skin", "full coverage foundation"),
               ("粉底液", "油皮用的粉底", "遮瑕力强的粉底")),
    ShopIntent("perfume", ("perfume", "parfum", "eau de toilette", "eau de cologne", "cologne", "fragrance mist"),
               ("perfume for women", "floral perfume", "eau de parfum spray"),
               ("女士香水", "花香调香水", "淡香水")),
    ShopIntent("hair dryer", ("hair dryer", "hairdryer", "blow dryer", "blowdryer"),
               ("hair dryer", "ionic blow dryer", "travel hair dryer"),
               ("吹风机", "负离子电吹风", "旅行用的便携吹风机")),
    ShopIntent("hair straightener", ("flat iron", "flattening iron", "straightener", "straightening iron"),
               ("hair straightener", "ceramic flat iron", "flat iron for thick hair"),
               ("直发器", "陶瓷直板夹", "拉直头发的夹板")),
    ShopIntent("curling iron", ("curling iron", "curling wand", "curling tong"),
               ("curling iron", "1 inch curling wand", "ceramic curling iron"),
               ("卷发棒", "一英寸卷发棒", "陶瓷卷发棒")),
    ShopIntent("makeup brushes", ("makeup brush", "make-up brush", "cosmetic brush", "Brushes & Applicators",
                                  "foundation brush", "kabuki"),
               ("makeup brushes", "makeup brush set", "foundation brush"),
               ("化妆刷", "化妆刷套装", "粉底刷")),
    ShopIntent("face mask", ("face mask", "facial mask", "sheet mask", "clay mask", "mud mask",
                             "Treatments & Masks > Masks"),
               ("face mask", "clay face mask", "hydrating sheet mask"),
               ("面膜", "清洁泥膜", "补水面膜")),
    ShopIntent("body lotion", ("body lotion", "body butter", "body cream", "body moisturizer", "body milk",
                               "Body > Moisturizers"),
               ("body lotion", "shea body butter", "body lotion for dry skin"),
               ("身体乳", "乳木果身体霜", "干皮用的身体乳")),
    ShopIntent("face cleanser", ("face wash", "facial wash", "facial cleanser", "face cleanser", "cleansing foam",
                                 "Face > Cleansers"),
               ("face wash", "gentle facial cleanser", "foaming cleanser for acne"),
               ("洗面奶", "温和洁面乳", "祛痘洁面泡沫")),
    ShopIntent("body wash", ("body wash", "shower gel", "bath gel", "Body Washes"),
               ("body wash", "shower gel", "moisturizing body wash"),
               ("沐浴露", "沐浴乳", "保湿沐浴露")),
    ShopIntent("hand cream", ("hand cream", "hand lotion", "Hand Creams"),
               ("hand cream", "lotion for cracked hands", "hand cream for dry hands"),
               ("护手霜", "手干裂用的护手霜", "滋润护手霜")),
    ShopIntent("eye shadow", ("eyeshadow", "eye shadow"),
               ("eyeshadow palette", "shimmer eye shadow", "neutral eyeshadow"),
               ("眼影", "眼影盘", "大地色眼影")),
    ShopIntent("lip gloss", ("lip gloss", "lipgloss"),
               ("lip gloss", "clear lip gloss", "shiny lip gloss"),
               ("唇彩", "透明唇彩", "亮晶晶的唇蜜")),
    ShopIntent("hair spray", ("hair spray", "hairspray"),
               ("hairspray", "strong hold hair spray", "flexible hold hairspray"),
               ("发胶", "强力定型发胶", "头发定型喷雾")),
    ShopIntent("false eyelashes", ("false eyelash", "false eyelashes", "fake eyelash", "fake eyelashes",
                                   "false lash", "fake lash", "strip lash", "Fake Eyelashes"),
               ("false eyelashes", "fake lashes", "natural strip lashes"),
               ("假睫毛", "自然款假睫毛", "浓密假睫毛")),
    ShopIntent("hair dye", ("hair dye", "hair color", "hair colour", "Hair Color", "hair colorant"),
               ("hair dye", "permanent hair color", "brown hair dye"),
               ("染发剂", "永久染发膏", "棕色染发剂")),
    ShopIntent("eye cream", ("eye cream", "Eyes > Creams", "eye gel", "under eye"),
               ("eye cream", "eye cream for dark circles", "anti wrinkle eye cream"),
               ("眼霜", "去黑眼圈的眼霜", "抗皱眼霜")),
    ShopIntent("concealer", ("concealer",),
               ("concealer", "concealer for dark circles", "full coverage concealer"),
               ("遮瑕膏", "遮黑眼圈的遮瑕", "遮瑕液")),
    ShopIntent("wig", ("wig",),
               ("wig", "long curly wig", "human hair wig"),
               ("假发", "长卷发假发", "真人发假发")),
    ShopIntent("acne treatment", ("acne", "blemish", "pimple", "breakout", "salicylic"),
               ("acne treatment", "pimple spot treatment", "salicylic acid acne cream"),
               ("祛痘膏", "痘痘点涂精华", "水杨酸祛痘")),
    ShopIntent("body scrub", ("body scrub", "sugar scrub", "salt scrub", "Body Scrubs"),
               ("body scrub", "sugar scrub", "exfoliating body scrub"),
               ("身体磨砂膏", "砂糖磨砂膏", "去角质身体磨砂")),
)  # fmt: skip


@dataclass(frozen=True)
class SearchQuery:
    intent: str
    language: Language
    split: Split
    text: str

    def to_json(self) -> dict[str, str]:
        return {"intent": self.intent, "language": self.language, "split": self.split, "text": self.text}


def split_intents(intents: Sequence[ShopIntent], seed: int) -> dict[str, Split]:
    """Intent name -> dev or test: the names shuffled with ``seed``, the first half dev."""
    names = sorted(intent.name for intent in intents)
    if len(set(names)) != len(names):
        raise ValueError("intent names must be distinct")
    random.Random(f"{seed}/search-intents").shuffle(names)
    middle = len(names) // 2
    return {name: "dev" if i < middle else "test" for i, name in enumerate(names)}


def build_search_set(intents: Sequence[ShopIntent] = INTENTS, seed: int = 0) -> list[SearchQuery]:
    """Every wording of every intent in both languages, in ``intents`` order, each tagged with its intent's split."""
    splits = split_intents(intents, seed)
    return [
        SearchQuery(intent.name, language, splits[intent.name], text)
        for intent in intents
        for language in ("en", "zh")
        for text in intent.wordings(language)
    ]


class Judge:
    """Relevance of catalog items to the intents, by keyword in title or category path."""

    def __init__(self, intents: Sequence[ShopIntent] = INTENTS) -> None:
        self._patterns = {intent.name: _pattern(intent.keywords) for intent in intents}

    def relevant(self, intent: str, title: str | None, category: str | None) -> bool:
        """Whether an item with this title and category path (levels joined by " > ") is what ``intent`` asks for.
        Titles are HTML-unescaped first ("Shampoo &amp; Conditioner")."""
        pattern = self._patterns[intent]
        return any(pattern.search(html.unescape(text)) for text in (title, category) if text)

    def precision(self, intent: str, results: Sequence[tuple[str | None, str | None]], k: int = 10) -> float:
        """Share of the first ``k`` (title, category) results that are relevant; fewer than ``k`` results count the
        missing ones as misses, so a search that returns less is not rewarded for it."""
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        return sum(self.relevant(intent, title, category) for title, category in results[:k]) / k


def _pattern(keywords: Sequence[str]) -> re.Pattern[str]:
    """Any keyword as whole words, any case, optionally plural ("shampoo" finds "Shampoos", not "shampooing")."""
    if not keywords:
        raise ValueError("an intent needs at least one keyword")
    alternatives = "|".join(re.escape(keyword) for keyword in sorted(keywords, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?:e?s)?(?![A-Za-z0-9])", re.IGNORECASE)
