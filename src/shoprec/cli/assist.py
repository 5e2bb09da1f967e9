"""`shoprec ask similar | ask item` and `shoprec chat`: the shopping assistant over a trained model and a dataset's
catalog, with the LLM backend from flags or $SHOPREC_LLM_*."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import typer

from shoprec.cli.common import console, guarded, load_data
from shoprec.data.dataset import Dataset
from shoprec.encoders.item_text import item_text
from shoprec.encoders.text import EncoderConfig
from shoprec.llm.assistant import AssistantOptions, History, Shop, Turn, chat_stream
from shoprec.llm.backends import ChatBackend, open_backend
from shoprec.llm.product import ask, similar
from shoprec.llm.prompts import Prompts
from shoprec.llm.prompts.build import item_facts
from shoprec.llm.rewrite import RewriteCache
from shoprec.llm.settings import LLMSettings
from shoprec.models.artifact import load_artifact
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.ranking.items import catalog_records, model_items
from shoprec.ranking.recommend import rankers_for
from shoprec.serving.catalog import cached_encoder, shared_encoder
from shoprec.types import PADDING, Vocabulary

T = TypeVar("T")
ask_app = typer.Typer(help="Ask the shopping assistant about one item (needs an LLM backend).", no_args_is_help=True)
Encoder = Literal["e5", "minilm", "hashing"]


LLM_BACKEND = typer.Option(None, help="local | openai | none (default: $SHOPREC_LLM_BACKEND, else local).")
LLM_MODEL = typer.Option(None, help="A local model's name or the server's model id ($SHOPREC_LLM_MODEL).")
LLM_BASE_URL = typer.Option(
    None, help="The OpenAI-compatible server's root, for backend openai ($SHOPREC_LLM_BASE_URL)."
)
LLM_TIME_BUDGET = typer.Option(None, help="Seconds one LLM request may take end to end (default 30).")
SEARCH_ENCODER = typer.Option("e5", help="Text encoder of search (hashing: word overlap, no model to load).")
CACHE_DIR = typer.Option(Path("runs/cache"), help="Encoder cache: item text is encoded once, ever.")
MODEL_DIR = typer.Option(..., help="A model directory written by `shoprec train` or `shoprec demo`.")


def llm_settings(
    backend: str | None, model: str | None, base_url: str | None, time_budget_s: float | None
) -> LLMSettings:
    """The flags that were given over $SHOPREC_LLM_* over the defaults."""
    flags = {"backend": backend, "model": model, "base_url": base_url, "time_budget_s": time_budget_s}
    return LLMSettings.from_environment(**{name: value for name, value in flags.items() if value is not None})


def load_shop(model_dir: Path, dataset: Dataset, search_encoder: Encoder, cache_dir: Path) -> tuple[Shop, Vocabulary]:
    """The model's vocabulary with ``dataset``'s catalog records, search vectors through the on-disk encoder cache
    (a first run encodes the catalog: minutes for E5), and the model's rankers."""
    model, vocabulary, _ = load_artifact(model_dir)
    config = EncoderConfig.model_validate({"name": search_encoder})
    records = catalog_records(dataset, vocabulary.ids)
    missing = sum(record is None for record in records[1:])
    if missing:
        console.print(f"[yellow]{missing:,} of the model's items have no catalog record in the data[/yellow]")
    texts = [item_text(_fields(record), config.max_chars) if record else "" for record in records]
    search = cached_encoder(config, cache_dir).encode(texts, "passage")
    queries = shared_encoder(config)
    rankers = rankers_for(model, lambda text: queries.encode([text], "query")[0])
    return Shop.of(model_items(model, vocabulary.ids, search, records), rankers), vocabulary


def _fields(record: Any) -> dict[str, object]:
    names = ("title", "category", "brand", "description", "tags")
    return {name: getattr(record, name) for name in names}


def history_of(dataset: Dataset, user: str, pseudonymize: Pseudonymizer, vocabulary: Vocabulary) -> History:
    """The user's whole history in the model's item indices, with timestamps and event types where the data has
    them; items the model does not know are left out."""
    pseudonym = pseudonymize(user)
    if pseudonym not in dataset.users:
        raise ValueError(f"user {user!r} is not in the data")
    row = int(np.flatnonzero(dataset.sequences.users == dataset.users.index(pseudonym))[0])
    start, stop = int(dataset.sequences.indptr[row]), int(dataset.sequences.indptr[row + 1])
    items = vocabulary.lookup(dataset.items.ids_of(dataset.sequences.items[start:stop]))
    known = items != PADDING
    stamps = dataset.sequences.timestamps
    events = dataset.event_types
    return History(
        items[known],
        None if stamps is None else np.asarray(stamps[start:stop], dtype=np.float64)[known],
        None if events is None else tuple(str(e) for e, k in zip(events[start:stop], known, strict=True) if k),
    )


def _with_backend(settings: LLMSettings, use: Callable[[ChatBackend], Coroutine[Any, Any, T]]) -> T:
    async def run() -> T:
        async with open_backend(settings) as backend:
            return await use(backend)

    return asyncio.run(run())


@ask_app.command("similar")
@guarded
def ask_similar(
    user: str = typer.Option(..., help="A user id as in DATA: their history shapes the choice."),
    item: str = typer.Option(..., help="The id of the item the user is viewing."),
    model_dir: Path = MODEL_DIR,
    data: Path = typer.Option(..., help="The dataset with the catalog and the user's history."),
    search_encoder: Encoder = SEARCH_ENCODER,
    cache_dir: Path = CACHE_DIR,
    llm_backend: str | None = LLM_BACKEND,
    llm_model: str | None = LLM_MODEL,
    llm_base_url: str | None = LLM_BASE_URL,
    llm_time_budget: float | None = LLM_TIME_BUDGET,
) -> None:
    """Five items like ITEM for USER: the similar-items ranker proposes candidates, the LLM chooses among them
    (the article's prompt, filled with the user's history), the ranking's order fills any gap."""
    settings = llm_settings(llm_backend, llm_model, llm_base_url, llm_time_budget)
    pseudonymize = Pseudonymizer.from_environment(remember=True)
    dataset, _ = load_data(data, pseudonymize)
    shop, vocabulary = load_shop(model_dir, dataset, search_encoder, cache_dir)
    history = history_of(dataset, user, pseudonymize, vocabulary)
    if item not in shop.items.positions:
        raise ValueError(f"item {item!r} is not in the model's catalog")
    found = _with_backend(settings, lambda llm: similar(item, history, shop, llm, Prompts()))
    typer.echo(f"like {shop.items.title(shop.items.index(item)) or item}:")
    for rank, pick in enumerate(found.items, start=1):
        typer.echo(f"{rank}. [{pick.item_id}] {pick.title or ''} — {pick.reason} ({pick.source})")
    if found.note:
        typer.echo(found.note)
    console.print(
        f"[dim]{found.template} v{found.version}; history shown {found.history_shown} "
        f"({'by time' if found.timed else 'by count'}); {_counts(found.counts)}; {found.latency_s:.1f} s"
        f"{'; fallback: ' + found.fallback if found.fallback else ''}[/dim]"
    )


@ask_app.command("item")
@guarded
def ask_item(
    question: str = typer.Argument(..., help="The shopper's question, in English or Chinese."),
    item: str = typer.Option(..., help="The item's id."),
    data: Path = typer.Option(..., help="The dataset whose catalog holds the item."),
    llm_backend: str | None = LLM_BACKEND,
    llm_model: str | None = LLM_MODEL,
    llm_base_url: str | None = LLM_BASE_URL,
    llm_time_budget: float | None = LLM_TIME_BUDGET,
) -> None:
    """Answer QUESTION about ITEM from its catalog fields only ("not stated" when they do not say)."""
    settings = llm_settings(llm_backend, llm_model, llm_base_url, llm_time_budget)
    dataset, _ = load_data(data)
    if item not in dataset.items:
        raise ValueError(f"item {item!r} is not in {data}")
    facts = item_facts(dataset, dataset.items.index(item))
    answer = _with_backend(settings, lambda llm: ask(facts, question, llm, Prompts()))
    typer.echo(answer.text)
    console.print(
        f"[dim]{answer.template} v{answer.version}; stated: {answer.stated}; model wrote: {answer.model_text!r}; "
        f"unsupported claims: {answer.unsupported_claims}; {answer.latency_s:.1f} s[/dim]"
    )


def chat(
    model_dir: Path = MODEL_DIR,
    data: Path = typer.Option(..., help="The dataset with the catalog (and USER's history)."),
    user: str | None = typer.Option(None, help="A user id as in DATA: their history personalises the results."),
    search_encoder: Encoder = SEARCH_ENCODER,
    cache_dir: Path = CACHE_DIR,
    llm_backend: str | None = LLM_BACKEND,
    llm_model: str | None = LLM_MODEL,
    llm_base_url: str | None = LLM_BASE_URL,
    llm_time_budget: float | None = LLM_TIME_BUDGET,
) -> None:
    """Chat with the shopping assistant: one message per line on stdin, each answer streamed to stdout; a line
    after the first refines the conversation ("cheaper", "not that brand", "更便宜的", "换个牌子")."""
    settings = llm_settings(llm_backend, llm_model, llm_base_url, llm_time_budget)
    pseudonymize = Pseudonymizer.from_environment(remember=True)
    dataset, _ = load_data(data, pseudonymize)
    shop, vocabulary = load_shop(model_dir, dataset, search_encoder, cache_dir)
    history = History.empty() if user is None else history_of(dataset, user, pseudonymize, vocabulary)

    async def talk(llm: ChatBackend) -> None:
        previous: Turn | None = None
        prompts, options = Prompts(), AssistantOptions()
        rewrites = RewriteCache(path=cache_dir / "rewrites.sqlite3")  # shared with serving's search
        for line in sys.stdin:
            if not line.strip():
                continue
            async for piece in chat_stream(line.strip(), previous, shop, history, llm, prompts, options, rewrites):
                if isinstance(piece, Turn):
                    previous = piece
                else:
                    typer.echo(piece, nl=False)
            typer.echo("")
            if previous is not None:
                console.print(f"[dim]{_turn_line(previous)}[/dim]")

    _with_backend(settings, talk)


def _counts(counts: Any) -> str:
    return ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in vars(counts).items())


def _turn_line(turn: Turn) -> str:
    asked = turn.intent.model_dump(exclude_defaults=True, exclude={"language"})
    remark = f"first remark {turn.first_remark_s:.1f} s, " if turn.first_remark_s is not None else ""
    first = f"items {turn.first_token_s:.1f} s, {remark}"
    fallback = f"; fallback: {turn.fallback}" if turn.fallback else ""
    return f"intent {asked}; {_counts(turn.counts)}; {first}turn {turn.latency_s:.1f} s{fallback}"
