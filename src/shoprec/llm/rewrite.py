"""A search query in another language than the catalog's, rewritten by the LLM into the catalog's language.

The multilingual encoder matches Chinese queries to English titles less well than English ones (docs/llm.md); a
short rewrite by the LLM closes most of that gap. Search must never wait on it for long nor fail because of it:
``rewrite`` answers within its time budget, and without a model, after a failure, a timeout or an answer that is
not a rewrite, it answers the query as written with the reason in ``error``. A query already in the catalog's
language never reaches the model. Rewrites are cached, in memory and optionally on disk, keyed by everything that
made them (model, rendered prompt, decoding), so a new prompt version or model never reuses an old answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import sqlite3
import time
from collections import OrderedDict
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from shoprec.llm.backends import ChatBackend, ChatOptions, Message
from shoprec.llm.errors import LLMBadOutput, LLMError
from shoprec.llm.intent import Language, detect_language
from shoprec.llm.prompts import Prompts
from shoprec.llm.prompts.context import RewriteContext

log = logging.getLogger(__name__)

# Greedy, one line. A rewrite is a few words: 1-2 s for the 1.5B model on one shared core (docs/llm.md), so 3 s
# bounds what a cold Chinese query adds to a search; a repeated one comes from the cache.
BUDGET_S = 3.0
REWRITE_OPTIONS = ChatOptions(max_tokens=32, temperature=0.0, seed=0, stop=("\n",), time_budget_s=BUDGET_S)
SEARCH_WAIT_S = 0.05  # how long a lookup or write waits for another process's lock: a search does not wait for it
STARTUP_WAIT_S = 30.0  # creating the table, once, at startup
MAX_CHARS = 200  # a longer answer is the model explaining, not a query
_LABEL = re.compile(r"^(?:english|chinese|query|rewritten(?: query)?|translation)\s*[:：]\s*", re.IGNORECASE)
_QUOTES = "\"'`“”‘’「」『』"


@dataclass(frozen=True)
class Rewritten:
    """What to search with. ``text`` is the rewrite, or the query as written when it needed none (already in the
    catalog's language) or when none could be had (``error`` says why)."""

    text: str
    source_language: Language
    cached: bool  # the rewrite came from the cache, not from the model
    latency: float  # seconds this call took
    error: str | None = None


class RewriteCache:
    """Rewrites by key: the ``size`` most recently used in memory and, with ``path``, every one in a SQLite file
    that outlives the process. The file is a convenience: a locked or broken file counts as a miss (logged), never
    as a failed search."""

    def __init__(self, size: int = 4096, path: Path | None = None) -> None:
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.size = size
        self.path = path
        self._memory: OrderedDict[str, str] = OrderedDict()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with closing(self._connect(STARTUP_WAIT_S)) as connection, connection:
                connection.execute("CREATE TABLE IF NOT EXISTS rewrites (key TEXT PRIMARY KEY, text TEXT NOT NULL)")

    def get(self, key: str) -> str | None:
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        if self.path is None:
            return None
        try:
            with closing(self._connect()) as connection:
                row = connection.execute("SELECT text FROM rewrites WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as error:
            log.warning("rewrite cache %s unreadable (%s): treated as a miss", self.path, error)
            return None
        if row is None:
            return None
        self._remember(key, row[0])
        return str(row[0])

    def put(self, key: str, text: str) -> None:
        self._remember(key, text)
        if self.path is None:
            return
        try:
            with closing(self._connect()) as connection, connection:
                connection.execute("INSERT OR REPLACE INTO rewrites VALUES (?, ?)", (key, text))
        except sqlite3.Error as error:
            log.warning("rewrite cache %s not written (%s)", self.path, error)

    def __len__(self) -> int:
        return len(self._memory)

    def _remember(self, key: str, text: str) -> None:
        self._memory[key] = text
        self._memory.move_to_end(key)
        while len(self._memory) > self.size:
            self._memory.popitem(last=False)

    def _connect(self, wait_s: float = SEARCH_WAIT_S) -> sqlite3.Connection:
        assert self.path is not None
        return sqlite3.connect(self.path, timeout=wait_s)


async def rewrite(
    query: str,
    llm: ChatBackend | None,
    prompts: Prompts,
    cache: RewriteCache | None,
    *,
    target: Language = "en",
    examples: bool = True,
    options: ChatOptions = REWRITE_OPTIONS,
) -> Rewritten:
    """``query`` in the catalog's language ``target``; never raises for a missing, failing or slow model."""
    started = time.perf_counter()
    source = detect_language(query)
    if source == target or not query.strip():
        return Rewritten(query, source, cached=False, latency=time.perf_counter() - started)
    if llm is None:
        return Rewritten(query, source, False, time.perf_counter() - started, "no LLM backend")
    rendered = prompts.render(RewriteContext(query, target, examples))
    messages = [Message(role=m["role"], content=m["content"]) for m in rendered.messages]
    key = _key(llm.model, messages, options)
    known = cache.get(key) if cache is not None else None
    if known is not None:
        return Rewritten(known, source, cached=True, latency=time.perf_counter() - started)
    budget = options.time_budget_s or BUDGET_S
    try:
        # The backend keeps the budget too; this bounds any ChatBackend, however it is written.
        async with asyncio.timeout(budget):
            answer = await llm.chat(messages, options)
        text = cleaned(answer.text, target, answer.finish_reason)
    except TimeoutError:
        reason = f"LLMTimeout: no answer within the time budget of {budget:g} s"
        return Rewritten(query, source, False, time.perf_counter() - started, reason)
    except LLMError as error:
        return Rewritten(query, source, False, time.perf_counter() - started, f"{type(error).__name__}: {error}")
    if cache is not None:
        cache.put(key, text)
    return Rewritten(text, source, cached=False, latency=time.perf_counter() - started)


def cleaned(answer: str, target: Language, finish_reason: str = "stop") -> str:
    """The query in a model's answer: first line, without a label ("English: ..."), quotes or a closing full stop;
    LLMBadOutput when that is empty, cut off, too long, not in ``target`` or an example line recited."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    text = _LABEL.sub("", lines[0]).strip().strip(_QUOTES).rstrip(".。").strip() if lines else ""
    if not text:
        raise LLMBadOutput(f"no rewrite in the answer {answer[:80]!r}")
    if "=>" in text:  # the examples' "query => rewrite" lines, recited instead of followed
        raise LLMBadOutput(f"the answer {text[:80]!r} recites the prompt's examples")
    if finish_reason == "length" or len(text) > MAX_CHARS:
        raise LLMBadOutput(f"the answer runs on past a query: {answer[:80]!r}")
    if detect_language(text) != target:
        raise LLMBadOutput(f"the answer {text[:80]!r} is not in {target}")
    return text


def _key(model: str, messages: list[Message], options: ChatOptions) -> str:
    made_by = json.dumps([model, messages, options.model_dump(mode="json")], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(made_by.encode("utf-8")).hexdigest()
