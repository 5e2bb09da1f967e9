"""What one running API is configured with: frozen, so that every request sees the same limits and keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shoprec.llm.settings import LLMSettings
from shoprec.privacy.consent import ConsentPolicy

DATABASE_URL_ENV = "SHOPREC_DATABASE_URL"
API_KEY_ENV = "SHOPREC_API_KEY"
MODEL_DIR_ENV = "SHOPREC_MODEL_DIR"
SETTINGS_ENV = "SHOPREC_SERVING_SETTINGS"  # the whole settings as JSON, handed to worker processes
DEFAULT_DATABASE_URL = "sqlite:///runs/serve/shoprec.sqlite3"


class ServingSettings(BaseModel):
    """Options of ``create_app``; ``api_key=None`` refuses every write, so a forgotten key never opens them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_dir: Path
    database_url: str = DEFAULT_DATABASE_URL
    api_key: str | None = Field(default=None, min_length=1)  # an empty key would match an empty header
    read_key_required: bool = False  # reads are open by default; True makes them need the key too
    max_batch: int = Field(default=10_000, ge=1)  # events or items per POST; more is a 413
    # Bytes of one request body; more is a 413 before it is parsed. 10,000 events take about 1 MB, 10,000 items
    # with short descriptions about 10 MB. Parsed JSON holds 7-25 times its bytes (measured on 16 MiB: events
    # 119 MB, a list of empty objects 424 MB), so this bounds what one request can cost.
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    max_k: int = Field(default=100, ge=1)
    search_encoder: Literal["e5", "minilm", "hashing"] = "e5"
    cache_dir: Path = Path("runs/cache")
    workers: int = Field(default=1, ge=1)  # server processes sharing the port and the store (uvicorn workers)
    # The LLM the assistant routes talk to: an OpenAI-compatible server (`shoprec serve` starts the local one as a
    # sidecar and points here), or none, with ``llm_unavailable`` saying why; feeds and search never wait on it.
    llm: LLMSettings = Field(default_factory=lambda: LLMSettings(backend="none"))
    llm_unavailable: str | None = None
    rewrite_budget_s: float = Field(default=3.0, gt=0)  # the longest a non-English search waits for its LLM rewrite
    consent: ConsentPolicy = Field(default_factory=ConsentPolicy)
    # Events older than this many days are purged (None: kept until a user is forgotten), checked at start and then
    # every ``purge_interval_s`` by each worker; `shoprec store purge` does the same by hand.
    retention_days: float | None = Field(default=None, gt=0)
    purge_interval_s: float = Field(default=3600.0, gt=0)

    @classmethod
    def from_environment(cls, **overrides: Any) -> ServingSettings:
        """Settings from $SHOPREC_DATABASE_URL, $SHOPREC_API_KEY and $SHOPREC_MODEL_DIR; ``overrides`` win."""
        values: dict[str, Any] = {}
        for env, name in ((DATABASE_URL_ENV, "database_url"), (API_KEY_ENV, "api_key"), (MODEL_DIR_ENV, "model_dir")):
            if value := os.environ.get(env):
                values[name] = value
        return cls(**(values | overrides))
