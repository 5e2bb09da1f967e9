"""Shared fixtures: small real slices of the shipped data, and a throwaway pseudonym key."""

from __future__ import annotations

import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from shoprec.data.benchmark import read_benchmark
from shoprec.data.dataset import Dataset
from shoprec.encoders.item_text import catalog_texts
from shoprec.encoders.text import MiniLMEncoder, normalise
from shoprec.evaluation.ledger import LEDGER_ENV
from shoprec.privacy.pseudonym import Pseudonymizer

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data"
TEST_KEY = bytes.fromhex("00112233445566778899aabbccddeeff" * 2)


@pytest.fixture(autouse=True)
def _pseudonym_key(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Never touch the developer's real key file from a test."""
    monkeypatch.setenv("SHOPREC_PSEUDONYM_KEY", TEST_KEY.hex())
    monkeypatch.setenv("SHOPREC_PSEUDONYM_KEY_FILE", str(tmp_path_factory.mktemp("key") / "pseudonym.key"))


@pytest.fixture(autouse=True)
def ledger_path(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Test-split reads made by tests go to a throwaway ledger, never the developer's runs/test_reads.jsonl."""
    path = tmp_path_factory.mktemp("ledger") / "test_reads.jsonl"
    monkeypatch.setenv(LEDGER_ENV, str(path))
    return path


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


@pytest.fixture(scope="session")
def minilm() -> MiniLMEncoder:
    """One MiniLM for the whole session: it loads on first use (seconds), so tests encode only a few texts."""
    return MiniLMEncoder()


@pytest.fixture(scope="session")
def beauty_item_vectors(beauty: Dataset) -> np.ndarray:
    """(n_items, 384) unit vectors of the slice's item text, row 0 zero, for models that read TrainData.item_vectors.

    A hashed bag of words, not a sentence encoder: the contract checks a model's mechanics, and encoding the slice's
    8,000 items with MiniLM would take a minute or more. tests/encoders checks the real encoders on a few texts.
    """
    vectors = np.zeros((beauty.items.size, 384), dtype=np.float32)
    for row, text in enumerate(catalog_texts(beauty.catalog), start=1):
        for word in re.findall(r"\w+", text.lower()):
            vectors[row, zlib.crc32(word.encode()) % 384] += 1.0
    return normalise(vectors)
