"""The run config: which model, its options, and an optional grid searched on the validation split."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from shoprec.config import Config


class RunConfig(Config):
    """One TOML file under ``configs/<dataset>/``: ``model = "..."``, ``[options]``, ``[search]``.

    ``options`` are validated by the model's own config class (an unknown key is an error naming it);
    ``search`` maps option names to candidate values, tried as a full grid and selected on validation NDCG@10.
    """

    model: str
    options: dict[str, Any] = Field(default_factory=dict)
    search: dict[str, list[Any]] = Field(default_factory=dict)
    selection_metric: str = "NDCG@10"
    # leave_one_out for order-only data (the papers' protocol); temporal = a global time cut (needs timestamps)
    split: Literal["leave_one_out", "temporal"] = "leave_one_out"
    chunk_size: int = Field(default=1024, ge=1)  # users scored at once during evaluation

    @classmethod
    def from_toml(cls, path: Path) -> RunConfig:
        with path.open("rb") as handle:
            return cls.model_validate(tomllib.load(handle))
