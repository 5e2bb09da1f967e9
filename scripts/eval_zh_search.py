"""Precision@10 of today's search for Chinese and English shoppers on the English Amazon Beauty catalog, and of
Chinese queries rewritten into English by a local LLM first (``llm.rewrite``).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python scripts/eval_zh_search.py \\
        --llm qwen2.5-coder-1.5b qwen2.5-coder-0.5b --out docs/results/llm/zh_search.json

Without --llm it measures the queries as written only (a minute: the catalog's vectors come from the cache). With
a model, the choices are made on the dev half of the intents only: each prompt variant (the template's worked
examples on or off) rewrites the dev queries, each rewrite is searched alone and followed by the query, and the
best pair on dev is the only one that rewrites the test half, so the test figure is read once.

The queries are every wording of ``llm.search_set.INTENTS`` (dev and test halves of the intents) and the judge is
its keyword judge. Search is what serving answers an anonymous query with: the catalog as ``shoprec serve --data``
seeds it, multilingual E5 vectors of each item's text (through the encoder cache under --cache-dir), the query read
by ``serving.query.search_request`` (price bounds and category words as filters) and ranked by
``ranking.recommend.search_ranker``; no trained model is involved in an anonymous search. Rewrites get the
shipped prompt and decoding with the time budget lifted (the figure measures the rewrite, not the machine's load);
each one's latency is recorded, with how many would have missed the serving budget.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.data.benchmark import read_benchmark
from shoprec.encoders.cache import CachedEncoder
from shoprec.encoders.item_text import item_text
from shoprec.encoders.text import EncoderConfig
from shoprec.evaluation.provenance import git_commit, machine, utc_now
from shoprec.llm.backends import OpenAIChat
from shoprec.llm.local import LocalServer
from shoprec.llm.prompts import Prompts
from shoprec.llm.rewrite import BUDGET_S, REWRITE_OPTIONS, RewriteCache, Rewritten, rewrite
from shoprec.llm.search_set import INTENTS, Judge, SearchQuery, build_search_set
from shoprec.llm.settings import LLMSettings
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.ranking.items import ItemIndex, catalog_records, index_items
from shoprec.ranking.recommend import Ranker, search_ranker
from shoprec.serving.catalog import item_fields, shared_encoder
from shoprec.serving.query import search_request

REPO = Path(__file__).resolve().parents[1]
K = 10
MEASURE = REWRITE_OPTIONS.model_copy(update={"time_budget_s": 600.0})
VARIANTS = {"few-shot": True, "zero-shot": False}  # the template's worked examples on or off
USES: dict[str, Callable[[str, str], str]] = {  # what is searched, from (the query, its rewrite)
    "rewrite": lambda query, rewritten: rewritten,
    "rewrite + query": lambda query, rewritten: rewritten if rewritten == query else f"{rewritten} {query}",
}
PROMPTS = Prompts()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "amazon_beauty")
    parser.add_argument("--cache-dir", type=Path, default=REPO / "runs" / "cache")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dev/test split of the intents")
    parser.add_argument("--llm", nargs="*", default=[], help="local models to rewrite the Chinese queries with")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    record: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "date": utc_now(),
        "commit": git_commit(),
        "machine": machine(),
        "k": K,
        "seed": args.seed,
    }
    queries = build_search_set(INTENTS, args.seed)
    began = time.perf_counter()
    items, search = searcher(args.data, args.cache_dir)
    record["catalog"] = {"data": str(args.data.relative_to(REPO)), "items": len(items) - 1}
    record["index_s"] = round(time.perf_counter() - began, 1)
    judge = Judge(INTENTS)
    record["as written"] = {}
    for language in ("en", "zh"):
        asked = [q for q in queries if q.language == language]
        record["as written"][language] = measured(asked, [q.text for q in asked], search, items, judge)
    record["rewritten"] = {}
    for model in args.llm:
        chinese = [q for q in queries if q.language == "zh"]
        measure = functools.partial(measured, search=search, items=items, judge=judge)
        record["rewritten"][model] = asyncio.run(select_and_test(model, chinese, args.variants, measure))
        if args.out:  # written after each model: a later one failing keeps the earlier figures
            write(record, args.out)
    if args.out:
        write(record, args.out)
    print(markdown(record))


def write(record: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


Measure = Callable[[list[SearchQuery], list[str]], dict[str, Any]]


async def select_and_test(
    model: str, chinese: list[SearchQuery], variants: list[str], measure: Measure
) -> dict[str, Any]:
    """On one local server: every prompt variant rewrites the dev queries, each rewrite is searched in every way of
    USES, the best (variant, use) on dev is chosen, and only that one rewrites and searches the test queries."""
    settings = LLMSettings(model=model, max_concurrency=1, read_timeout_s=600.0, time_budget_s=600.0)
    dev = [q for q in chinese if q.split == "dev"]
    test = [q for q in chinese if q.split == "test"]
    out: dict[str, Any] = {"dev": {}, "rewrites": {}}
    with LocalServer.from_settings(settings) as server:
        async with OpenAIChat(settings, server.base_url) as chat:
            for variant in variants:
                rewrites, wall_s = await rewrite_all(chat, dev, VARIANTS[variant], RewriteCache())
                out["rewrites"][f"dev, {variant}"] = rewrite_stats(rewrites, wall_s)
                for use, searched in USES.items():
                    texts = [searched(q.text, r.text) for q, r in zip(dev, rewrites, strict=True)]
                    out["dev"][f"{variant}, {use}"] = measure(dev, texts)
            chosen = max(out["dev"], key=lambda name: out["dev"][name]["precision"]["dev"])  # ties: the first
            variant, use = chosen.split(", ")
            cache = RewriteCache()
            rewrites, wall_s = await rewrite_all(chat, test, VARIANTS[variant], cache)
            again, _ = await rewrite_all(chat, test, VARIANTS[variant], cache)
    out["chosen"] = chosen
    out["rewrites"][f"test, {variant}"] = rewrite_stats(rewrites, wall_s) | {
        "cached": {
            "hits": sum(r.cached for r in again),
            "median_s": round(statistics.median(r.latency for r in again), 6),
        }
    }
    out["test"] = measure(test, [USES[use](q.text, r.text) for q, r in zip(test, rewrites, strict=True)])
    return out


def searcher(data: Path, cache_dir: Path) -> tuple[ItemIndex, Callable[[str], np.ndarray]]:
    """The catalog's search view and a function from query text to the ranked item indices (best first)."""
    dataset, _ = read_benchmark(data, Pseudonymizer(os.urandom(32)))  # users are not read: any key will do
    records = catalog_records(dataset, dataset.items.ids)  # as serving seeds its store; [0] is padding
    config = EncoderConfig(name="e5")
    texts = [item_text(item_fields(item), config.max_chars) if item else "" for item in records[1:]]
    vectors = CachedEncoder(shared_encoder(config), cache_dir / "encoders").encode(texts, "passage")
    ids = ("", *dataset.items.ids)
    items = index_items(
        ids,
        records,
        table=None,
        popularity=np.zeros(len(ids), dtype=np.float32),
        search=np.vstack([np.zeros((1, vectors.shape[1]), dtype=np.float32), vectors]),
    )
    queries = shared_encoder(config)  # queries skip the disk cache, as in serving
    ranker: Ranker = search_ranker(lambda text: queries.encode([text], "query")[0])

    def search(text: str) -> np.ndarray:
        request, _ = search_request(text, K, items)
        return ranker.rank([request], items)[0].items

    return items, search


def measured(
    asked: list[SearchQuery], texts: list[str], search: Callable[[str], np.ndarray], items: ItemIndex, judge: Judge
) -> dict[str, Any]:
    """Precision@K of searching ``texts`` (what was searched for each of ``asked``), per split and per query."""
    rows = []
    for query, text in zip(asked, texts, strict=True):
        found = search(text)
        relevant = [judge.relevant(query.intent, items.title(i), items.category(i)) for i in found.tolist()]
        rows.append(
            query.to_json()
            | {
                "searched": text,
                "precision": sum(relevant) / K,
                "items": [items.ids[i] for i in found.tolist()],
                "relevant": relevant,
            }
        )
    splits = {split: [r["precision"] for r in rows if r["split"] == split] for split in ("dev", "test")}
    return {
        "precision": {split: round(statistics.fmean(p), 4) for split, p in splits.items() if p}
        | {"all": round(statistics.fmean(r["precision"] for r in rows), 4)},
        "n": {split: len(p) for split, p in splits.items() if p},
        "queries": rows,
    }


async def rewrite_all(
    chat: OpenAIChat, queries: list[SearchQuery], examples: bool, cache: RewriteCache
) -> tuple[list[Rewritten], float]:
    began = time.perf_counter()
    done = [await rewrite(q.text, chat, PROMPTS, cache, examples=examples, options=MEASURE) for q in queries]
    return done, time.perf_counter() - began


def rewrite_stats(rewrites: list[Rewritten], wall_s: float) -> dict[str, Any]:
    asked = [r.latency for r in rewrites if r.error is None]
    return {
        "wall_s": round(wall_s, 1),
        "errors": [r.error for r in rewrites if r.error],
        "latency_s": {
            "median": round(statistics.median(asked), 3) if asked else None,
            "max": round(max(asked), 3) if asked else None,
            "over_serving_budget": sum(s > BUDGET_S for s in asked),
            "serving_budget": BUDGET_S,
        },
    }


def markdown(record: dict[str, Any]) -> str:
    """Precision@K per condition and half; a rewrite condition's test cell is filled only for the one chosen."""
    lines = ["| condition | dev | test | queries |", "| --- | ---: | ---: | ---: |"]

    def row(name: str, figures: dict[str, Any]) -> None:
        p = figures["precision"]
        cells = " | ".join(f"{p[s]:.3f}" if s in p else "-" for s in ("dev", "test"))
        lines.append(f"| {name} | {cells} | {sum(figures['n'].values())} |")

    for language, figures in record["as written"].items():
        row(f"{language} as written", figures)
    for model, result in record["rewritten"].items():
        for name, figures in result["dev"].items():
            row(f"zh rewritten by {model} ({name})", figures)
        row(f"zh rewritten by {model} ({result['chosen']}), chosen on dev", result["test"])
    return "\n".join(lines)


if __name__ == "__main__":
    main()
