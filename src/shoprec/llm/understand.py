"""A query read by rules and, when a model answers in time, by the LLM under the intent schema; ``merge`` decides.

The LLM is optional everywhere: without a backend, or when it fails or runs out of time, the rules' intent is the
answer and ``Understood.llm_error`` says why the model's reading is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from shoprec.llm.backends import ChatBackend, ChatOptions, Message
from shoprec.llm.errors import LLMError
from shoprec.llm.intent import Intent, intent_schema, merge, parse
from shoprec.llm.prices import has_number
from shoprec.llm.prompts import Prompts
from shoprec.llm.prompts.context import IntentContext
from shoprec.llm.terms import CatalogTerms

PROMPT_NAMES = 40  # catalog categories and brands listed in the prompt, each: enough to anchor names, short to read
INTENT_OPTIONS = ChatOptions(max_tokens=160, temperature=0.0, seed=0, time_budget_s=8.0)


@dataclass(frozen=True)
class Understood:
    intent: Intent  # what the ranking uses: rules and LLM merged
    rules: Intent
    llm: Intent | None  # None: no model reading (see llm_error)
    template: str
    version: int
    llm_error: str | None = None


async def understand(
    query: str,
    terms: CatalogTerms,
    llm: ChatBackend | None,
    prompts: Prompts,
    options: ChatOptions = INTENT_OPTIONS,
) -> Understood:
    """The query's intent; the LLM is asked only when ``llm`` is given, and its failure never fails the call."""
    rules = parse(query, terms)
    rendered = prompts.render(IntentContext(query, terms.categories[:PROMPT_NAMES], terms.brands[:PROMPT_NAMES]))
    if llm is None:
        return Understood(rules, rules, None, rendered.name, rendered.version, "no LLM backend")
    messages = [Message(role=m["role"], content=m["content"]) for m in rendered.messages]
    try:
        answer = await llm.chat_json(messages, intent_schema(), options)
        read = Intent.model_validate(answer.value)
        if not has_number(query):  # a price bound of a query that writes no number is the model's invention
            read = read.model_copy(update={"min_price": None, "max_price": None, "currency": None})
    except (LLMError, ValidationError) as error:
        return Understood(rules, rules, None, rendered.name, rendered.version, f"{type(error).__name__}: {error}")
    return Understood(merge(rules, read, query, terms), rules, read, rendered.name, rendered.version)
