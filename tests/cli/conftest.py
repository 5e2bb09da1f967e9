"""A model the command tests share: ItemKNN trained by `shoprec train` on the Beauty slice (a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoprec.cli import app


@pytest.fixture(scope="session")
def trained(beauty_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "itemknn"
    result = CliRunner().invoke(app, ["train", "--data", str(beauty_dir), "--model", "itemknn", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out
