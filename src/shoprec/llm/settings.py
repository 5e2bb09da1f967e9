"""Which LLM backend answers and within what limits: one frozen block, read from the environment where secrets
and machine paths live.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator

from shoprec.config import Config
from shoprec.llm.models import KNOWN_MODELS, default_model_dir

ENVIRONMENT = {  # variable -> field
    "SHOPREC_LLM_BACKEND": "backend",
    "SHOPREC_LLM_MODEL": "model",
    "SHOPREC_LLM_BASE_URL": "base_url",
    "SHOPREC_LLM_API_KEY": "api_key",
    "SHOPREC_LLM_MODEL_DIR": "model_dir",
}


class LLMSettings(Config):
    """``local`` runs llama.cpp in this process on a packaged model; ``openai`` talks to any OpenAI-compatible
    server at ``base_url``; ``none`` makes every LLM feature answer "unavailable".
    """

    backend: Literal["local", "openai", "none"] = "local"
    model: str = "qwen2.5-coder-1.5b"  # local: a name in KNOWN_MODELS; openai: the server's model id
    base_url: str | None = None  # openai only, e.g. "https://api.openai.com/v1"
    api_key: SecretStr | None = None  # from $SHOPREC_LLM_API_KEY, so it never sits in a config file
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=60.0, gt=0)  # the longest wait for the next bytes of an answer
    time_budget_s: float = Field(default=30.0, gt=0)  # one request end to end: queueing, retries, generation
    retries: int = Field(default=2, ge=0)  # after connect errors, 429 and 5xx; never after another 4xx
    backoff_s: float = Field(default=0.5, ge=0)  # wait before the first retry, doubled for each next one
    max_concurrency: int = Field(default=2, ge=1)  # requests in flight per client (and a local server's slots)
    max_tokens: int = Field(default=256, ge=1)  # generated tokens per request unless the request asks for fewer
    threads: int = Field(default=1, ge=1)  # local: CPU threads llama.cpp computes with
    context_tokens: int = Field(default=4096, ge=256)  # local: prompt + answer tokens per concurrent request
    model_dir: Path = Field(default_factory=default_model_dir)  # local: where assembled model files are cached

    @model_validator(mode="after")
    def _backend_needs(self) -> LLMSettings:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend 'openai' needs base_url (or $SHOPREC_LLM_BASE_URL)")
        if self.backend == "local" and self.model not in KNOWN_MODELS:
            raise ValueError(f"unknown local model {self.model!r}; known models: {', '.join(sorted(KNOWN_MODELS))}")
        return self

    @classmethod
    def from_environment(cls, **overrides: Any) -> LLMSettings:
        """Settings from the $SHOPREC_LLM_* variables of ``ENVIRONMENT``; ``overrides`` win."""
        values = {field: value for env, field in ENVIRONMENT.items() if (value := os.environ.get(env))}
        return cls(**(values | overrides))
