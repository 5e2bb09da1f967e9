"""Typed config blocks: frozen, with defaults, and an unknown key is an error that names it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Config(BaseModel):
    """Base for every component's config block (a TOML table maps onto one of these)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
