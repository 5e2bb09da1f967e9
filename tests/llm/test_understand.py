"""Query understanding with and without a model: the rules' reading always stands; the LLM only adds."""

from __future__ import annotations

import asyncio

from shoprec.llm.backends import ChatOptions, OpenAIChat
from shoprec.llm.intent import Intent
from shoprec.llm.local import LocalServer
from shoprec.llm.prompts import Prompts
from shoprec.llm.settings import LLMSettings
from shoprec.llm.terms import CatalogTerms
from shoprec.llm.understand import understand

from .conftest import with_chat

# SmolLM2-135M writes valid JSON for these under the schema (greedy, seed 0); on Chinese queries it loops on digits
# until the token budget ends, which the timeout test's fallback covers.
QUERIES = ("essie polish under $9", "OPI nail polish cheaper than 12 dollars")

TERMS = CatalogTerms.of(["Nail Polish", "Shampoo", "口红"], ["OPI", "Essie", "迪奥"])
PROMPTS = Prompts()
PATIENT = ChatOptions(max_tokens=400, seed=0, time_budget_s=60)  # shared cores: the default 8 s is for serving


def test_without_a_backend_the_rules_answer_and_say_why() -> None:
    understood = asyncio.run(understand("OPI nail polish under $15", TERMS, None, PROMPTS))
    assert understood.intent == understood.rules
    assert (understood.intent.brand, understood.intent.category, understood.intent.max_price) == (
        "OPI",
        "Nail Polish",
        15.0,
    )
    assert understood.llm is None and understood.llm_error == "no LLM backend"
    assert (understood.template, understood.version) == ("intent", PROMPTS.version("intent"))


def test_a_model_reading_is_merged_and_never_overrides_rules_prices_or_language(
    server: LocalServer, llm_settings: LLMSettings
) -> None:
    async def ask(chat: OpenAIChat) -> list:
        return [await understand(query, TERMS, chat, PROMPTS, PATIENT) for query in QUERIES]

    roomy = llm_settings.model_copy(update={"max_tokens": 400})  # the session's settings cap answers at 48 tokens
    answers = with_chat(roomy, server.base_url, ask)
    for understood in answers:
        assert understood.llm_error is None and isinstance(understood.llm, Intent)
        assert understood.intent.language == understood.rules.language
        assert understood.intent.max_price == understood.rules.max_price
        assert understood.intent.currency == understood.rules.currency
    assert [(u.intent.brand, u.intent.max_price, u.intent.currency) for u in answers] == [
        ("Essie", 9.0, "USD"),
        ("OPI", 12.0, "USD"),
    ]


def test_a_model_that_runs_out_of_time_leaves_the_rules_answer(server: LocalServer, llm_settings: LLMSettings) -> None:
    hurried = ChatOptions(max_tokens=160, time_budget_s=0.001)
    understood = with_chat(
        llm_settings,
        server.base_url,
        lambda chat: understand("shampoo under 20 dollars", TERMS, chat, PROMPTS, hurried),
    )
    assert understood.intent == understood.rules and understood.llm is None
    assert understood.llm_error is not None and understood.llm_error.startswith("LLMTimeout")
