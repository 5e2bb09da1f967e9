"""LLM re-ranking as a ranking stage: LlamaRec's verbalizer (Yue et al., 2023) on the base ranker's top N.

The N best candidates are labelled A, B, C ... under the user's recent history (``prompts/rerank.j2``); one forward
pass (``max_tokens=1`` with ``top_logprobs``) gives each letter's log-probability as the first answer token, the
item's LLM score. The order comes from a fusion, (1 - weight) × base score + weight × LLM score, both standardised
over the N candidates, so weight 0 is the base order exactly; the stage is not in any default ranking.

Small models answer by position as much as by content (a pilot collapsed onto one letter). Two counters, measured
in ``scripts/eval_llm_rerank.py``: ``orders="both"`` asks again with the candidates reversed and averages each
item's two letter scores (a second prompt; its history prefix is cached by llama.cpp), and ``calibrate`` subtracts
the letter log-probabilities of a content-free prompt (no history, untitled candidates: Zhao et al., "Calibrate
before use", ICML 2021), asked once per candidate count.

Sync stage, async backend: ``Ranker.rank`` is synchronous (serving runs it in a worker thread, evaluation in a
plain loop) and stays one code path, while a backend is an asyncio client bound to one event loop. So the stage
takes a synchronous ``LetterAsk``; ``LoopAsk`` runs the backend's coroutines on the loop the backend lives on
(``run_coroutine_threadsafe``) and blocks the calling thread until they finish, which is right for a call that
only waits on a server. ``background_ask`` gives scripts and the CLI such a loop in a thread of its own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
from pydantic import Field

from shoprec.config import Config
from shoprec.llm.backends import ChatBackend, ChatOptions, ChatResult, Message
from shoprec.llm.errors import LLMBadOutput, LLMError
from shoprec.llm.prompts import Prompts, Rendered
from shoprec.llm.prompts.build import content_free_rerank_context, ranking_rerank_context
from shoprec.ranking.items import ItemIndex
from shoprec.ranking.types import Request

MAX_CANDIDATES = 26  # one capital letter each


class LLMRerankConfig(Config):
    """How the stage asks and fuses; the defaults are LlamaRec's N = 20 and the counters chosen on validation
    (docs/llm.md, "LLM re-ranking"). There is no default weight: the stage is off unless a ranking adds it."""

    weight: float = Field(ge=0, le=1)  # share of the LLM score in the fusion; 0: the base order exactly
    candidates: int = Field(default=20, ge=2, le=MAX_CANDIDATES)  # the top N of the base ranking it reorders
    orders: Literal["forward", "both"] = "both"  # both: average over the forward and the reversed listing
    calibrate: bool = True  # subtract the letter priors of a content-free prompt
    history: int = Field(default=20, ge=0)  # most recent history items the prompt shows
    top_logprobs: int = Field(default=20, ge=1)  # alternatives the server returns; unseen letters get the floor


@dataclass(frozen=True)
class LetterLogprobs:
    """One answer: the log-probability of each candidate letter (A first) as the first answer token. A letter not
    among the server's top alternatives gets the lowest one returned (an upper bound of its own)."""

    values: np.ndarray  # (n,) float64
    seen: np.ndarray  # (n,) bool: the letter was among the top alternatives
    prompt_tokens: int  # all of the prompt, the part llama.cpp had cached from an earlier prompt included


def read_letters(result: ChatResult, n: int) -> LetterLogprobs:
    """The letters A.. of ``n`` candidates from a one-token answer's top alternatives: " A", "A" and "(A" count
    as A (their probabilities summed)."""
    if not result.logprobs:
        raise LLMBadOutput("the server returned no log-probabilities (does it support top_logprobs?)")
    first = result.logprobs[0]
    alternatives = {option.token: option.logprob for option in first.top_logprobs} | {first.token: first.logprob}
    letters = [chr(ord("A") + i) for i in range(n)]
    mass = dict.fromkeys(letters, 0.0)
    for token, logprob in alternatives.items():
        letter = token.strip().strip("()").strip()
        if letter in mass:
            mass[letter] += float(np.exp(logprob))
    floor = min(alternatives.values())
    seen = np.array([mass[letter] > 0 for letter in letters])
    values = np.array([np.log(mass[letter]) if mass[letter] > 0 else floor for letter in letters])
    return LetterLogprobs(values, seen, result.usage.prompt_tokens)


class LetterAsk(Protocol):
    """Synchronous: each prompt's letter log-probabilities (raises ``LLMError`` when no answer comes)."""

    def __call__(self, prompts: Sequence[Rendered], top_logprobs: int) -> list[LetterLogprobs]: ...


async def ask_letters(
    backend: ChatBackend, prompts: Sequence[Rendered], top_logprobs: int, time_budget_s: float | None = None
) -> list[LetterLogprobs]:
    """One greedy answer token per prompt, all asked at once (the backend's concurrency limit queues them)."""
    options = ChatOptions(max_tokens=1, top_logprobs=top_logprobs, time_budget_s=time_budget_s)
    asked = [[Message(role=m["role"], content=m["content"]) for m in prompt.messages] for prompt in prompts]
    results = await asyncio.gather(*(backend.chat(messages, options) for messages in asked))
    return [read_letters(result, len(prompt.allowed)) for result, prompt in zip(results, prompts, strict=True)]


@dataclass(frozen=True)
class LoopAsk:
    """A ``LetterAsk`` through ``backend``, which lives on ``loop`` running in another thread (the serving app's
    loop, or ``background_ask``'s); ``time_budget_s`` per answer (None: the backend's)."""

    backend: ChatBackend
    loop: asyncio.AbstractEventLoop
    time_budget_s: float | None = None

    def __call__(self, prompts: Sequence[Rendered], top_logprobs: int) -> list[LetterLogprobs]:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise RuntimeError("LoopAsk blocks until its loop answers: call it from a worker thread, not the loop's")
        coroutine = ask_letters(self.backend, prompts, top_logprobs, self.time_budget_s)
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()


@contextmanager
def background_ask(
    open_chat: Callable[[], AbstractAsyncContextManager[ChatBackend]], time_budget_s: float | None = None
) -> Iterator[LoopAsk]:
    """A ``LoopAsk`` on the backend ``open_chat()`` enters (e.g. ``lambda: open_backend(settings)``), on an event
    loop in a thread of its own; the backend is closed and the loop stopped on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="llm-rerank-loop", daemon=True)
    thread.start()
    opened = open_chat()
    try:
        backend = asyncio.run_coroutine_threadsafe(opened.__aenter__(), loop).result()
        try:
            yield LoopAsk(backend, loop, time_budget_s)
        finally:
            asyncio.run_coroutine_threadsafe(opened.__aexit__(None, None, None), loop).result()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


@dataclass(frozen=True)
class Letters:
    """What the model answered for one request's N candidates, per letter as asked: ``forward`` lists the
    candidates best first, ``reverse`` worst first; ``prior`` is the content-free prompt's answer."""

    forward: LetterLogprobs
    reverse: LetterLogprobs | None
    prior: LetterLogprobs | None

    @property
    def prompt_tokens(self) -> int:  # of this request's prompts; the shared prior is asked once, not counted
        return self.forward.prompt_tokens + (self.reverse.prompt_tokens if self.reverse else 0)


def log_softmax(values: np.ndarray) -> np.ndarray:
    shifted = values - values.max()
    return shifted - np.log(np.exp(shifted).sum())


def llm_scores(letters: Letters, orders: Literal["forward", "both"], calibrate: bool) -> np.ndarray:
    """(N,) the LLM score of each candidate in the forward order: its letter's log-probability renormalised over
    the N letters, less the letter's prior when calibrating, averaged with its reversed listing's for "both"."""

    def answer(asked: LetterLogprobs) -> np.ndarray:
        values = log_softmax(asked.values)
        if calibrate:
            if letters.prior is None:
                raise ValueError("calibrating needs the content-free prompt's answer")
            values = values - log_softmax(letters.prior.values)
        return values

    scores = answer(letters.forward)
    if orders == "both":
        if letters.reverse is None:
            raise ValueError("averaging over both orders needs the reversed listing's answer")
        scores = (scores + answer(letters.reverse)[::-1]) / 2  # the reversed prompt's letter A is candidate N-1
    return scores


def standardised(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def fuse(base: np.ndarray, llm: np.ndarray, weight: float) -> np.ndarray:
    """Positions into the candidates, best first, by (1 - weight) × standardised base score + weight × standardised
    LLM score; ties keep the given (base) order, so weight 0 returns it exactly."""
    total = (1 - weight) * standardised(base) + weight * standardised(llm)
    return np.argsort(-total, kind="stable")


@dataclass(frozen=True)
class LLMReRanker:
    """The ranking's ``ReRanker``: reorders the first ``config.candidates`` of the pool (the rest keeps its place
    after them). When the model cannot answer (unavailable, timed out, bad output) the pool stands as it was and
    the ranking's notes say why."""

    ask: LetterAsk
    config: LLMRerankConfig
    prompts: Prompts = field(default_factory=Prompts)
    _priors: dict[int, LetterLogprobs] = field(default_factory=dict, repr=False, compare=False)

    def pool(self, request: Request) -> int:
        return self.config.candidates

    def rerank(
        self, request: Request, items: ItemIndex, pool: np.ndarray, scores: np.ndarray
    ) -> tuple[np.ndarray, str | None]:
        head = pool[: self.config.candidates]
        if len(head) < 2:
            return pool, None
        try:
            letters = self.letters(request, items, head)
        except LLMError as error:
            return pool, f"the LLM re-ranking was skipped, so the list keeps the model's order: {error}"
        return np.concatenate([head[self.order(scores[head], letters)], pool[len(head) :]]), None

    def order(self, base: np.ndarray, letters: Letters) -> np.ndarray:
        """Positions into the candidates, best first, from their (N,) base scores and the model's answers."""
        return fuse(base, llm_scores(letters, self.config.orders, self.config.calibrate), self.config.weight)

    def letters(self, request: Request, items: ItemIndex, head: np.ndarray) -> Letters:
        """Ask the model about ``head`` (at most ``config.candidates`` item indices, best first) as configured."""
        if not 1 <= len(head) <= self.config.candidates:
            raise ValueError(f"the stage reorders 1 to {self.config.candidates} candidates, got {len(head)}")
        listings = [head, head[::-1]] if self.config.orders == "both" else [head]
        history = self.config.history
        prompts = [
            self.prompts.render(ranking_rerank_context(items, request.history, shown, history)) for shown in listings
        ]
        n = len(head)
        prior = self._priors.get(n) if self.config.calibrate else None
        if self.config.calibrate and prior is None:
            prompts.append(self.prompts.render(content_free_rerank_context(n)))
        answers = self.ask(prompts, self.config.top_logprobs)
        if len(answers) != len(prompts):
            raise LLMBadOutput(f"{len(answers)} answers to {len(prompts)} prompts")
        if self.config.calibrate and prior is None:
            prior = self._priors.setdefault(n, answers.pop())
        return Letters(answers[0], answers[1] if self.config.orders == "both" else None, prior)
