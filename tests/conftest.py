"""Shared fixtures: small real slices of the shipped data, and a throwaway pseudonym key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shoprec.data.benchmark import read_benchmark
from shoprec.data.dataset import Dataset
from shoprec.privacy.pseudonym import Pseudonymizer

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data"
TEST_KEY = bytes.fromhex("00112233445566778899aabbccddeeff" * 2)


@pytest.fixture(autouse=True)
def _pseudonym_key(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Never touch the developer's real key file from a test."""
    monkeypatch.setenv("SHOPREC_PSEUDONYM_KEY", TEST_KEY.hex())
    monkeypatch.setenv("SHOPREC_PSEUDONYM_KEY_FILE", str(tmp_path_factory.mktemp("key") / "pseudonym.key"))


@pytest.fixture(scope="session")
def pseudonymize() -> Pseudonymizer:
    return Pseudonymizer(TEST_KEY)


def slice_benchmark(source: Path, target: Path, n_users: int) -> Path:
    """Copy the first ``n_users`` lines of a shipped benchmark folder (and its item file) into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    lines = (source / "sequences.txt").read_text().splitlines(keepends=True)[:n_users]
    (target / "sequences.txt").write_text("".join(lines))
    shutil.copy(source / "items.jsonl.gz", target / "items.jsonl.gz")
    return target


@pytest.fixture(scope="session")
def beauty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 2,000 users of Amazon Beauty in the benchmark layout."""
    return slice_benchmark(SHIPPED / "amazon_beauty", tmp_path_factory.mktemp("beauty"), 2000)


@pytest.fixture(scope="session")
def beauty(beauty_dir: Path, pseudonymize: Pseudonymizer) -> Dataset:
    dataset, report = read_benchmark(beauty_dir, pseudonymize)
    assert report.rejected == 0
    return dataset
