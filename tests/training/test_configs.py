"""Every frozen run config that ships under configs/ loads and builds its model (and every grid point does): a typo
in one would otherwise surface only half an hour into the run that reproduces a published figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from shoprec.models.registry import create_model
from shoprec.training.config import RunConfig
from shoprec.training.select import grid

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
CONFIGS = sorted(CONFIG_DIR.rglob("*.toml"))


def test_the_configs_folder_is_found() -> None:
    assert len(CONFIGS) >= 20


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: str(path.relative_to(CONFIG_DIR)))
def test_a_shipped_config_builds_its_model_at_every_grid_point(path: Path) -> None:
    run = RunConfig.from_toml(path)
    for combo in grid(run.search):
        model = create_model(run.model, {**run.options, **combo})
        assert model.name == run.model
