"""Load time and speed of a packaged local model, one JSON line per thread count:

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python scripts/bench_llm.py --model qwen2.5-coder-1.5b --threads 1 2

Each run verifies the model file (cheap after the first), loads it into a fresh llama.cpp server and streams two
short greedy answers (en, zh). Prompt speed is prompt tokens / time to the first token; generation speed is the
tokens after the first / the time after the first token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

from shoprec.llm.backends import ChatOptions, Message, OpenAIChat
from shoprec.llm.local import LocalServer
from shoprec.llm.settings import LLMSettings

QUESTIONS: dict[str, list[Message]] = {
    "en": [{"role": "user", "content": "Suggest three gifts for someone who loves hiking, one line each."}],
    "zh": [{"role": "user", "content": "请推荐三件适合喜欢徒步的人的礼物，每件一行。"}],
}


async def answers(settings: LLMSettings, base_url: str, max_tokens: int) -> dict[str, dict[str, float]]:
    measured = {}
    async with OpenAIChat(settings, base_url) as chat:
        for language, messages in QUESTIONS.items():
            async with chat.stream(messages, ChatOptions(max_tokens=max_tokens)) as stream:
                async for _ in stream:
                    pass
            result = stream.result
            assert result.first_token_s is not None
            measured[language] = {
                "prompt_tokens": result.usage.prompt_tokens,
                "completion_tokens": result.usage.completion_tokens,
                "first_token_s": round(result.first_token_s, 2),
                "prompt_tok_s": round(result.usage.prompt_tokens / result.first_token_s, 1),
                "gen_tok_s": round((result.usage.completion_tokens - 1) / (result.latency_s - result.first_token_s), 1),
            }
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    for threads in args.threads:
        settings = LLMSettings.from_environment(model=args.model, threads=threads, max_concurrency=1)
        started = time.perf_counter()
        server = LocalServer.from_settings(settings)
        verified = time.perf_counter()
        with server:
            loaded = time.perf_counter()
            measured = asyncio.run(answers(settings, server.base_url, args.max_tokens))
        line = {
            "model": args.model,
            "threads": threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "verify_s": round(verified - started, 2),
            "load_s": round(loaded - verified, 2),
        }
        print(json.dumps(line | measured, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
