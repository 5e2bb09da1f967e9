"""Slot accuracy of query understanding on a labelled set written by scripts/build_intent_set.py: the rules alone,
and with ``--llm`` the LLM alone and rules + LLM merged (``llm.understand``), per language.

    .venv/bin/python scripts/eval_intent.py SET.jsonl [--mistakes N]      # rules on the whole set
    .venv/bin/python scripts/build_intent_set.py runs/intent 0             # dev.jsonl, test.jsonl
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python scripts/eval_intent.py runs/intent/test.jsonl \\
        --llm qwen2.5-coder-1.5b --per-language 50 --seed 0 --out docs/results/llm/intent_qwen2.5-coder-1.5b.json

A local model reads one query in 10-40 s on one shared core (about 100 JSON tokens), so ``--llm`` scores a fixed
subset: ``--per-language`` rows of each language drawn with ``--seed`` (the rules are scored on the same rows). Each
query gets the intent prompt and decoding of ``understand`` (greedy, 160 tokens) but a lifted time budget, so the
figures measure what the model reads, not whether it beat the serving budget; each reading's latency is recorded,
and the share that would have missed the serving budget is reported. A reading that fails (bad JSON, out of schema)
counts as the empty intent for "LLM alone" and leaves the rules' reading in "merged", as in serving.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from shoprec.evaluation.provenance import git_commit, machine, utc_now
from shoprec.llm.backends import OpenAIChat
from shoprec.llm.intent import Intent, parse
from shoprec.llm.intent_eval import mistakes, sample, score
from shoprec.llm.intent_set import Labelled, read_jsonl
from shoprec.llm.intent_sources import load_sources
from shoprec.llm.local import LocalServer
from shoprec.llm.prompts import Prompts
from shoprec.llm.settings import LLMSettings
from shoprec.llm.terms import CatalogTerms
from shoprec.llm.understand import INTENT_OPTIONS, Understood, understand

REPO = Path(__file__).resolve().parents[1]
PATIENT = INTENT_OPTIONS.model_copy(update={"time_budget_s": 600.0})
LANGUAGES = ("en", "zh")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set", type=Path)
    parser.add_argument("--mistakes", type=int, default=0, help="show the first N queries the rules get wrong")
    parser.add_argument("--llm", nargs="*", default=[], help="local models (llm.models.KNOWN_MODELS) to read with")
    parser.add_argument("--per-language", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="raw JSON: every reading, the tables and the run's provenance")
    args = parser.parse_args()
    rows = read_jsonl(args.set)
    terms = {source.name: source.terms for source in load_sources(REPO)}
    if not args.llm:
        rules_alone(args.set, rows, terms, args.mistakes)
        return
    started = machine()
    rows = sample(rows, args.per_language, args.seed)
    record: dict[str, Any] = {
        "command": " ".join(sys.argv),
        "set": str(args.set),
        "per_language": args.per_language,
        "seed": args.seed,
        "n": len(rows),
        "options": PATIENT.model_dump(),
        "serving_budget_s": INTENT_OPTIONS.time_budget_s,
        "date": utc_now(),
        "commit": git_commit(),
        "machine": started,
        "rules": tables(rows, [parse(row.query, terms[row.source]) for row in rows]),
        "models": {},
    }
    for model in args.llm:
        began = time.perf_counter()
        journal = args.out.with_name(f"{args.out.stem}.partial.jsonl") if args.out else None
        understood = asyncio.run(read_all(model, rows, terms, journal))
        record["models"][model] = model_record(rows, understood, time.perf_counter() - began)
        if journal:
            journal.unlink()
        if args.out:  # written after each model: a later one failing keeps the earlier figures
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(markdown(record))


def rules_alone(path: Path, rows: list[Labelled], terms: dict[str, CatalogTerms], show: int) -> None:
    for language in LANGUAGES:
        subset = [row for row in rows if row.expected.language == language]
        if subset:
            readings = [parse(row.query, terms[row.source]) for row in subset]
            print(score(subset, readings).table(f"{path.name} {language}") + "\n")
    shown = 0
    for row in rows:
        got = parse(row.query, terms[row.source])
        wrong = mistakes(row, got)
        if wrong and shown < show:
            shown += 1
            slots = ", ".join(f"{s}: {getattr(got, s)!r} want {getattr(row.expected, s)!r}" for s in wrong)
            print(f"{row.query!r} [{row.template}] {slots}")


async def read_all(
    model: str, rows: list[Labelled], terms: dict[str, CatalogTerms], journal: Path | None
) -> list[tuple[Understood, float]]:
    """Every row through ``understand`` on one local server, one query at a time (one slot, one thread). Rows go
    source by source, so the server reuses the cached prompt prefix (schema and that catalog's names). Each reading
    is appended to ``journal`` as it comes, and a rerun takes the ones it holds instead of asking again: an hour's
    run on shared machines should not be lost to one interruption (the wall time then counts only this run)."""
    settings = LLMSettings(model=model, max_concurrency=1, read_timeout_s=600.0, time_budget_s=600.0)
    prompts = Prompts()
    out = _journalled(journal, model, rows)
    order = sorted((i for i in range(len(rows)) if i not in out), key=lambda i: rows[i].source)
    if order:
        with LocalServer.from_settings(settings) as server:
            async with OpenAIChat(settings, server.base_url) as chat:
                for i in order:
                    began = time.perf_counter()
                    out[i] = (
                        await understand(rows[i].query, terms[rows[i].source], chat, prompts, PATIENT),
                        time.perf_counter() - began,
                    )
                    if journal:
                        with journal.open("a", encoding="utf-8") as handle:
                            handle.write(json.dumps(_entry(model, rows[i], *out[i]), ensure_ascii=False) + "\n")
                    if len(out) % 20 == 0:
                        print(f"{model}: {len(out)}/{len(rows)}", file=sys.stderr, flush=True)
    return [out[i] for i in range(len(rows))]


def _entry(model: str, row: Labelled, understood: Understood, seconds: float) -> dict[str, Any]:
    return {
        "model": model,
        "query": row.query,
        "source": row.source,
        "rules": understood.rules.model_dump(),
        "llm": None if understood.llm is None else understood.llm.model_dump(),
        "merged": understood.intent.model_dump(),
        "template": understood.template,
        "version": understood.version,
        "llm_error": understood.llm_error,
        "latency_s": seconds,
    }


def _journalled(journal: Path | None, model: str, rows: list[Labelled]) -> dict[int, tuple[Understood, float]]:
    """The readings of ``model`` a previous run of the same rows left in ``journal``, by row position."""
    if journal is None or not journal.is_file():
        return {}
    position = {(row.query, row.source): i for i, row in enumerate(rows)}
    out = {}
    for line in journal.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        i = position.get((entry["query"], entry["source"]))
        if entry["model"] == model and i is not None:
            llm = None if entry["llm"] is None else Intent(**entry["llm"])
            understood = Understood(
                Intent(**entry["merged"]),
                Intent(**entry["rules"]),
                llm,
                entry["template"],
                entry["version"],
                entry["llm_error"],
            )
            out[i] = (understood, float(entry["latency_s"]))
    return out


def model_record(rows: list[Labelled], understood: list[tuple[Understood, float]], wall_s: float) -> dict[str, Any]:
    alone = [u.llm or Intent() for u, _ in understood]
    latencies = [seconds for _, seconds in understood]
    return {
        "wall_s": round(wall_s, 1),
        "failures": sum(u.llm is None for u, _ in understood),
        "latency_s": {
            "median": round(statistics.median(latencies), 2),
            "p95": round(statistics.quantiles(latencies, n=20)[-1], 2),
            "over_serving_budget": sum(s > INTENT_OPTIONS.time_budget_s for s in latencies),
        },
        "llm": tables(rows, alone),
        "merged": tables(rows, [u.intent for u, _ in understood]),
        "readings": [
            {
                "query": row.query,
                "source": row.source,
                "template": row.template,
                "expected": row.expected.model_dump(exclude={"attributes"}),
                "rules": u.rules.model_dump(),
                "llm": None if u.llm is None else u.llm.model_dump(),
                "merged": u.intent.model_dump(),
                "llm_error": u.llm_error,
                "latency_s": round(seconds, 2),
            }
            for row, (u, seconds) in zip(rows, understood, strict=True)
        ],
    }


def tables(rows: list[Labelled], readings: list[Intent]) -> dict[str, dict[str, Any]]:
    """Slot accuracy per language of ``readings`` (aligned with ``rows``)."""
    out = {}
    for language in LANGUAGES:
        keep = [i for i, row in enumerate(rows) if row.expected.language == language]
        accuracy = score([rows[i] for i in keep], [readings[i] for i in keep])
        out[language] = {
            "n": accuracy.n,
            "per_slot": accuracy.per_slot,
            "overall": accuracy.overall,
            "exact": accuracy.exact,
        }
    return out


def markdown(record: dict[str, Any]) -> str:
    """One table per language: a column per reader (rules, then each model alone and merged)."""
    out = []
    for language in LANGUAGES:
        columns: list[tuple[str, dict[str, Any]]] = [("rules", record["rules"][language])]
        for model, figures in record["models"].items():
            columns += [(f"{model} alone", figures["llm"][language]), (f"rules + {model}", figures["merged"][language])]
        n = record["rules"][language]["n"]
        lines = [
            f"| {language} (n={n}) | " + " | ".join(name for name, _ in columns) + " |",
            "| --- |" + " ---: |" * len(columns),
        ]
        slots = [*columns[0][1]["per_slot"], "overall", "exact"]
        for slot in slots:
            label = {"overall": "all slots", "exact": "whole query"}.get(slot, slot)
            values = [c["per_slot"][slot] if slot in c["per_slot"] else c[slot] for _, c in columns]
            lines.append(f"| {label} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out)


if __name__ == "__main__":
    main()
