"""The run config: which model, its options, and an optional grid searched on the validation split."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, model_validator

from shoprec.config import Config
from shoprec.encoders.text import EncoderConfig
from shoprec.privacy.dp import PrivacyConfig


class RunConfig(Config):
    """One TOML file under ``configs/<dataset>/``: ``model = "..."``, ``[options]``, ``[search]``.

    ``options`` are validated by the model's own config class (an unknown key is an error naming it);
    ``search`` maps option names to candidate values, tried as a full grid and selected on validation NDCG@10.
    """

    model: str
    options: dict[str, Any] = Field(default_factory=dict)
    # True: options the run leaves out come from the model's default-config rule over the training data's shape
    # (``Recommender.options_for``), as when a user names a model without a config
    options_from_data: bool = False
    search: dict[str, list[Any]] = Field(default_factory=dict)
    selection_metric: str = "NDCG@10"
    # leave_one_out: the papers' protocol; temporal: a global time cut (needs timestamps); cold_items: a random
    # cold_fraction of items (test) and another, disjoint one (validation) lose all interactions, and only users
    # whose test (validation) item is cold are tested (validated)
    split: Literal["leave_one_out", "temporal", "cold_items"] = "leave_one_out"
    cold_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    split_seed: int = 0
    # item text -> vectors, computed (and cached under cache_dir) only for models that use item text
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    cache_dir: Path = Path("runs/cache")
    chunk_size: int = Field(default=1024, ge=1)  # users scored at once during evaluation
    # DP-SGD (``[privacy]``): None trains as usual
    privacy: PrivacyConfig | None = None
    # A seeded fraction of users kept out of training altogether, named in the model directory, so that
    # `shoprec audit privacy` can compare the model's loss on them with its loss on the users it trained on.
    holdout_users: float = Field(default=0.0, ge=0, lt=1)
    holdout_seed: int = 0

    @model_validator(mode="after")
    def _private_fits_select_nothing(self) -> Self:
        if self.privacy is not None and self.search:
            raise ValueError(
                "[search] with [privacy]: choosing among configurations on the training users' validation items "
                "spends privacy the accountant does not count; give one configuration"
            )
        return self

    def identity(self) -> dict[str, Any]:
        """What decides the figures (JSON-ready): everything but where caches go and how many users score at once."""
        identity = self.model_dump(mode="json", exclude={"cache_dir", "chunk_size"})
        # Keys added after figures were published count only when set: a record made before them still matches.
        for key in ("privacy", "holdout_users", "holdout_seed", "options_from_data"):
            if identity[key] == type(self).model_fields[key].default:
                del identity[key]
        return identity

    @classmethod
    def from_toml(cls, path: Path) -> RunConfig:
        with path.open("rb") as handle:
            return cls.model_validate(tomllib.load(handle))
