"""Scripted two-turn conversations with the shopping assistant, built deterministically from a catalog (zh + en):
a request with constraints, then a follow-up that refines it. Measures, against what the script stated (not what
the assistant understood):

- constraint satisfaction: every item shown is in the stated category (and not in a ruled-out one), within the
  stated price bound ("cheaper": below the cheapest item shown before) and of the stated brand (not a ruled-out one),
  where the catalog has prices / brands;
- grounding: every item shown exists and was retrieved for its turn; ids dropped and unsupported claims counted;
- answer language: the answer's own words in the message's language (and the model's own intro, before checks);
- turn latency and time to the first text piece, p50 / p95.

    .venv/bin/python scripts/eval_chat.py --model-dir runs/demo/sasrec --data data/amazon_beauty \\
        --llm-model smollm2-135m [--conversations 100] [--out runs/eval_chat/smollm2.json]
    .venv/bin/python scripts/eval_chat.py --rees46 ../shared/data/rees46_sample/2019-Oct-head.csv ...

Beauty has categories only (no prices, no brands); --rees46 reads the REES46 event slice (category paths, brands,
USD prices, no titles) and ranks it with an ItemKNN fitted on it.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from shoprec.cli.assist import load_shop
from shoprec.data.dataset import Dataset
from shoprec.data.sources import load_source
from shoprec.encoders.cache import encode_catalog
from shoprec.encoders.text import HashingEncoder
from shoprec.evaluation.provenance import git_commit, machine, utc_now
from shoprec.llm.assistant import AssistantOptions, History, Shop, Turn, chat_stream
from shoprec.llm.backends import ChatBackend, open_backend
from shoprec.llm.prompts import Prompts
from shoprec.llm.settings import LLMSettings
from shoprec.models.base import TrainData
from shoprec.models.itemknn import ItemKNN
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.ranking.items import catalog_records, levels, model_items
from shoprec.ranking.recommend import rankers_for

ASK = {
    "en": ("I'm looking for {c}.", "Can you recommend some {c}?", "Show me {c}", "I need {c}, any ideas?"),
    "zh": ("我想买 {c}", "推荐一些 {c} 吧", "有没有好用的 {c}？", "帮我找找 {c}"),
}
ONLY = {"en": ("only {c}", "just {c} please", "actually, only {c}"), "zh": ("只要 {c}", "只看 {c} 吧")}
NOT = {"en": ("no {c} please", "not {c}", "anything but {c}"), "zh": ("不要 {c}", "{c} 就算了", "别给我推荐 {c}")}
UNDER = {
    "en": ("{c} under ${p:g}", "{c} for less than {p:g} dollars"),
    "zh": ("{p:g}美元以下的 {c}", "{c}，不超过{p:g}美元"),
}
CHEAPER = {"en": ("cheaper", "anything cheaper?"), "zh": ("更便宜的", "有没有便宜点的")}
BRAND = {"en": ("{b} {c}", "{c} from {b}"), "zh": ("{b} 的 {c}", "想要 {b} 的 {c}")}
OTHER_BRAND = {"en": ("not that brand", "another brand please"), "zh": ("换个牌子", "不要这个牌子")}


@dataclass(frozen=True)
class Stated:
    """What one message states, to check every item shown against."""

    category: str | None = None
    exclude_category: str | None = None
    max_price: float | None = None  # None with ``cheaper``: the bound is the cheapest item shown the turn before
    cheaper: bool = False
    brand: str | None = None
    exclude_brand: str | None = None


@dataclass(frozen=True)
class Conversation:
    kind: str
    language: str
    user_row: int
    messages: tuple[str, str]
    stated: tuple[Stated, Stated]


def _tree(shop: Shop) -> tuple[Counter[str], dict[str, Counter[str]]]:
    """Items per query category, and per category its child categories with their item counts."""
    names = {name.lower(): name for name in shop.terms.categories}
    items: Counter[str] = Counter()
    children: dict[str, Counter[str]] = {}
    for record in shop.items.items:
        path = [names[level.lower()] for level in levels(record.category if record else None) if level.lower() in names]
        items.update(set(path))
        for parent, child in itertools.pairwise(path):
            children.setdefault(parent, Counter())[child] += 1
    return items, children


def build(shop: Shop, n: int, n_users: int) -> list[Conversation]:
    """``n`` conversations, alternating en / zh, cycling over the kinds the catalog supports and over its categories
    (most items first); every phrasing is the catalog's own name in a fixed template."""
    items, children = _tree(shop)
    parents = [c for c, k in items.most_common() if k >= 15 and any(v >= 5 for v in children.get(c, {}).values())]
    leaves = [c for c, k in items.most_common() if k >= 10]
    prices = ~np.isnan(shop.items.prices)
    kinds = ["narrow", "exclude"]
    if prices.any():
        kinds.append("cheaper")
    if (shop.items.brands != "").any() and prices.any():
        kinds.append("brand")
    out: list[Conversation] = []
    for i in range(n):
        language, kind = ("en", "zh")[i % 2], kinds[(i // 2) % len(kinds)]
        pick = i // (2 * len(kinds))
        variant = i // 2
        if kind in ("narrow", "exclude"):
            parent = parents[pick % len(parents)]
            usable = [c for c, v in children[parent].most_common() if v >= 5]
            child = usable[variant % len(usable)]
            first = ASK[language][variant % len(ASK[language])].format(c=parent)
            if kind == "narrow":
                second = ONLY[language][variant % len(ONLY[language])].format(c=child)
                stated = (Stated(category=parent), Stated(category=child))
            else:
                second = NOT[language][variant % len(NOT[language])].format(c=child)
                stated = (Stated(category=parent), Stated(category=parent, exclude_category=child))
        elif kind == "cheaper":
            category = leaves[pick % len(leaves)]
            mask = shop.items.in_categories([category]) & prices
            bound = float(np.ceil(np.median(shop.items.prices[mask]))) if mask.any() else 100.0
            first = UNDER[language][variant % 2].format(c=category, p=bound)
            second = CHEAPER[language][variant % 2]
            stated = (Stated(category=category, max_price=bound), Stated(category=category, cheaper=True))
        else:
            brand, category = _brand_and_category(shop, pick)
            first = BRAND[language][variant % 2].format(b=brand, c=category)
            second = OTHER_BRAND[language][variant % 2]
            stated = (Stated(category=category, brand=brand), Stated(category=category, exclude_brand=brand))
        out.append(Conversation(kind, language, (i * 7919) % n_users, (first, second), stated))
    return out


def _brand_and_category(shop: Shop, pick: int) -> tuple[str, str]:
    """The ``pick``-th most common (brand, leaf category) pair with at least 3 items and another brand beside it."""
    pairs: Counter[tuple[str, str]] = Counter()
    for record in shop.items.items:
        if record and record.brand and levels(record.category):
            pairs[(record.brand, levels(record.category)[-1])] += 1
    per_category = Counter(category for _, category in pairs)
    usable = [pair for pair, k in pairs.most_common() if k >= 3 and per_category[pair[1]] >= 2]
    return usable[pick % len(usable)]


def violations(shop: Shop, turn: Turn, stated: Stated, cheapest_before: float | None) -> list[str]:
    """What each item shown breaks of the stated constraints (empty: all met)."""
    out = []
    bound = cheapest_before if stated.cheaper else stated.max_price
    for shown in turn.items:
        index = shop.items.index(shown.item_id)
        record = shop.items.items[index]
        if stated.category and not shop.items.in_categories([stated.category])[index]:
            out.append(f"{shown.item_id} not in {stated.category}")
        if stated.exclude_category and shop.items.in_categories([stated.exclude_category])[index]:
            out.append(f"{shown.item_id} in excluded {stated.exclude_category}")
        price = shop.items.price(index)
        if bound is not None and (price is None or price > bound + 1e-9):
            out.append(f"{shown.item_id} price {price} above {bound}")
        brand = (record.brand or "").lower() if record else ""
        if stated.brand and brand != stated.brand.lower():
            out.append(f"{shown.item_id} brand {brand!r} not {stated.brand}")
        if stated.exclude_brand and brand == stated.exclude_brand.lower():
            out.append(f"{shown.item_id} brand {brand} excluded")
    return out


@dataclass
class Record:
    conversation: int
    kind: str
    language: str
    turn: int
    message: str
    intent: dict[str, object]
    shown: list[str]
    violations: list[str]
    grounded: bool  # every item shown exists and was retrieved for this turn
    counts: dict[str, int]
    answer_language: str | None
    model_language: str | None
    latency_s: float
    first_token_s: float  # the items, with the ranking's reasons
    first_remark_s: float | None  # the model's first checked sentence
    fallback: str | None
    answer: str = field(repr=False, default="")


async def run(shop: Shop, conversations: list[Conversation], histories: list[History], llm: ChatBackend,
              options: AssistantOptions) -> list[Record]:  # fmt: skip
    prompts = Prompts()
    records: list[Record] = []
    for number, conversation in enumerate(conversations):
        previous: Turn | None = None
        for position, (message, stated) in enumerate(zip(conversation.messages, conversation.stated, strict=True)):
            history = histories[conversation.user_row]
            turn: Turn | None = None
            async for piece in chat_stream(message, previous, shop, history, llm, prompts, options):
                turn = piece if isinstance(piece, Turn) else turn
            assert turn is not None
            cheapest = min((s.price for s in previous.items if s.price is not None), default=None) if previous else None
            records.append(
                Record(
                    conversation=number,
                    kind=conversation.kind,
                    language=conversation.language,
                    turn=position + 1,
                    message=message,
                    intent=turn.intent.model_dump(exclude_defaults=True),
                    shown=[s.item_id for s in turn.items],
                    violations=violations(shop, turn, stated, cheapest),
                    grounded=all(s.item_id in shop.items.positions and s.item_id in turn.retrieved for s in turn.items),
                    counts=asdict(turn.counts),
                    answer_language=turn.answer_language,
                    model_language=turn.model_language,
                    latency_s=turn.latency_s,
                    first_token_s=turn.first_token_s,
                    first_remark_s=turn.first_remark_s,
                    fallback=turn.fallback,
                    answer=turn.answer,
                )
            )
            previous = turn
            print(f"{number + 1}/{len(conversations)} t{position + 1} {turn.latency_s:5.1f} s {message!r}: "
                  f"{len(turn.items)} shown, {len(records[-1].violations)} violations", flush=True)  # fmt: skip
    return records


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summary(records: list[Record]) -> dict[str, object]:
    shown = [r for r in records if r.shown]
    items = sum(len(r.shown) for r in records)
    latencies = [r.latency_s for r in records]
    first = [r.first_token_s for r in records]
    remarks = [r.first_remark_s for r in records if r.first_remark_s is not None]
    totals = Counter[str]()
    for r in records:
        totals.update(r.counts)
    return {
        "turns": len(records),
        "turns_with_items": len(shown),
        "items_shown": items,
        "constraint_satisfaction_items": 1 - sum(len(r.violations) for r in records) / max(items, 1),
        "constraint_satisfaction_turns": sum(not r.violations for r in shown) / max(len(shown), 1),
        "grounded_turns": sum(r.grounded for r in records) / max(len(records), 1),
        **{f"total_{name}": value for name, value in totals.items()},
        "answer_language_match": sum(r.answer_language in (None, r.language) for r in records) / len(records),
        "model_language_match": sum(r.model_language == r.language for r in records) / len(records),
        "fallbacks": sum(r.fallback is not None for r in records),
        "turn_latency_s_p50": _percentile(latencies, 50),
        "turn_latency_s_p95": _percentile(latencies, 95),
        "first_text_s_p50": _percentile(first, 50),
        "first_text_s_p95": _percentile(first, 95),
        "turns_with_a_remark": len(remarks),
        "first_remark_s_p50": _percentile(remarks, 50),
        "first_remark_s_p95": _percentile(remarks, 95),
        "by_language": {
            language: {
                "turns": len(subset),
                "constraint_satisfaction_turns": sum(not r.violations for r in subset if r.shown)
                / max(sum(bool(r.shown) for r in subset), 1),
                "answer_language_match": sum(r.answer_language in (None, language) for r in subset) / len(subset),
                "model_language_match": sum(r.model_language == language for r in subset) / len(subset),
            }
            for language in ("en", "zh")
            if (subset := [r for r in records if r.language == language])
        },
    }


def rees46_shop(csv_path: Path, pseudonymize: Pseudonymizer) -> tuple[Shop, Dataset]:
    """The REES46 event slice in shoprec's layout, ranked by an ItemKNN fitted on it, searched by hashed words."""
    directory = Path(tempfile.mkdtemp(prefix="rees46-"))
    seen: set[str] = set()
    with csv_path.open(encoding="utf-8") as source, (directory / "events.csv").open("w") as events, \
            (directory / "catalog.csv").open("w") as catalog:  # fmt: skip
        events.write("user_id,item_id,event_type,timestamp\n")
        catalog.write("item_id,category,brand,price\n")
        for row in csv.DictReader(source):
            events.write(f"{row['user_id']},{row['product_id']},{row['event_type']},"
                         f"{row['event_time'].replace(' UTC', '+00:00')}\n")  # fmt: skip
            if row["product_id"] not in seen:
                seen.add(row["product_id"])
                category = " > ".join(row["category_code"].split("."))
                catalog.write(f"{row['product_id']},{category},{row['brand']},{row['price']}\n")
    dataset, _ = load_source(directory, pseudonymize)
    model = ItemKNN()
    model.fit(TrainData(dataset.items.size, dataset.sequences))
    encoder = HashingEncoder()
    search = encode_catalog(dataset.catalog, encoder)
    items = model_items(model, dataset.items.ids, search, records=catalog_records(dataset, dataset.items.ids))
    return Shop.of(items, rankers_for(model, lambda text: encoder.encode([text], "query")[0])), dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="A trained model directory (Beauty).")
    parser.add_argument("--data", type=Path, default=Path("data/amazon_beauty"))
    parser.add_argument("--rees46", type=Path, help="The REES46 event CSV instead of --model-dir/--data.")
    parser.add_argument("--search-encoder", default="e5", choices=("e5", "minilm", "hashing"))
    parser.add_argument("--cache-dir", type=Path, default=Path("runs/cache"))
    parser.add_argument("--llm-model", default="smollm2-135m")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--time-budget", type=float, default=120.0, help="Seconds per LLM request.")
    parser.add_argument("--conversations", type=int, default=100, help="How many to build (at least 100).")
    parser.add_argument("--limit", type=int, help="Run only the first N (alternating en / zh).")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    pseudonymize = Pseudonymizer(b"eval-chat".ljust(32, b"\0"))  # a fixed key: the same users every run
    if args.rees46:
        shop, dataset = rees46_shop(args.rees46, pseudonymize)
        rows = [dataset.sequences.row(r) for r in range(len(dataset.sequences))]
        histories = [History(np.asarray(row, dtype=np.int64)) for row in rows]
    else:
        if args.model_dir is None:
            parser.error("--model-dir is needed with --data")
        dataset, _ = load_source(args.data, pseudonymize)
        shop, vocabulary = load_shop(args.model_dir, dataset, args.search_encoder, args.cache_dir)
        histories = [History(vocabulary.lookup(dataset.items.ids_of(row)))
                     for row in dataset.sequences.rows()]  # fmt: skip
        histories = [History(h.items[h.items > 0]) for h in histories]
    conversations = build(shop, max(args.conversations, 100), len(histories))
    chosen = conversations[: args.limit] if args.limit else conversations
    settings = LLMSettings(model=args.llm_model, threads=args.threads, max_concurrency=2, max_tokens=320,
                           time_budget_s=args.time_budget)  # fmt: skip
    options = AssistantOptions()

    async def go() -> list[Record]:
        async with open_backend(settings) as llm:
            return await run(shop, chosen, histories, llm, options)

    started, date, host = time.perf_counter(), utc_now(), machine()  # the load average before the run
    records = asyncio.run(go())
    result = {
        "command": "scripts/eval_chat.py " + " ".join(f"{k}={v}" for k, v in vars(args).items() if v is not None),
        "date": date,
        "commit": git_commit(),
        "machine": host,
        "model": args.llm_model,
        "conversations_built": len(conversations),
        "conversations_run": len(chosen),
        "wall_s": time.perf_counter() - started,
        "summary": summary(records),
        "turns": [asdict(r) for r in records],
    }
    print(json.dumps(result["summary"], indent=2, ensure_ascii=False))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
