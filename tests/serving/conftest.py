"""Serving fixtures, shared by the pipeline and the HTTP tests: a small real Beauty slice, a fused SASRec trained
on it in seconds with real MiniLM item vectors, and a store seeded from the slice.

The slice keeps the first 2,000 users but only the items at least ten of them touched (358 items, 5.6k events):
item text is what costs time here (E5 encodes tens of texts a second on two cores), while more users per item
train a more useful model at no encoding cost. Every encoder shares one session cache, so each text is encoded
once per session.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

from shoprec.data.benchmark import read_benchmark
from shoprec.data.dataset import Dataset
from shoprec.data.split import hold_out_last
from shoprec.encoders.cache import CachedEncoder, encode_catalog
from shoprec.encoders.text import EncoderConfig
from shoprec.models.artifact import Manifest, save_artifact
from shoprec.models.base import TrainData
from shoprec.models.registry import create_model
from shoprec.models.sasrec import SASRec, SASRecConfig
from shoprec.privacy.pseudonym import Pseudonymizer
from shoprec.serving.catalog import shared_encoder
from shoprec.serving.pipeline import Pipeline
from shoprec.serving.seed import seed_store
from shoprec.storage.store import Store
from shoprec.training.fit import fit_model

SHIPPED = Path(__file__).resolve().parents[2] / "data"
# Options of the registry models the serving tests fit by name, where the defaults do not suit the slice or a
# model has no defaults: a blend names its parts (and, with no validation here, its weight).
CLASSIC_OPTIONS: dict[str, dict[str, object]] = {
    "als": {"factors": 16, "iterations": 3},
    "blend": {"parts": [{"model": "itemknn"}, {"model": "pop"}], "weight": 0.5},
}
MODEL_ENCODER = EncoderConfig(name="minilm", max_chars=256)  # not the default cut-off: serving must read it
SERVING_USERS = 2000
MIN_ITEM_USERS = 10
# Small and quick (seconds on one core); little dropout, since the slice is tiny and the text side carries
# most of what the model knows.
MODEL = SASRecConfig.model_validate(
    {
        "item_mode": "fused",
        "dim": 32,
        "layers": 1,
        "heads": 1,
        "dropout": 0.1,
        "max_len": 20,
        "train": {"epochs": 20, "batch_size": 32, "lr": 3e-3, "warmup_steps": 10, "eval_every": 5, "seed": 0},
    }
)


def dense_slice(source: Path, target: Path, n_users: int, min_item_users: int) -> Path:
    """The first ``n_users`` lines of a benchmark folder without items fewer than ``min_item_users`` lines touch
    (users left with fewer than two items are dropped), and an item file of only the kept items.
    """
    lines = [line.split() for line in (source / "sequences.txt").read_text().splitlines()[:n_users]]
    counts = Counter(item for line in lines for item in set(line[1:]))
    kept = {item for item, count in counts.items() if count >= min_item_users}
    rows = [[line[0], *(item for item in line[1:] if item in kept)] for line in lines]
    target.mkdir(parents=True, exist_ok=True)
    (target / "sequences.txt").write_text("".join(" ".join(row) + "\n" for row in rows if len(row) > 2))
    with gzip.open(source / "items.jsonl.gz", "rt", encoding="utf-8") as handle:
        records = [line for line in handle if str(json.loads(line)["item_id"]) in kept]
    with gzip.open(target / "items.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(records)
    return target


@pytest.fixture(scope="session")
def serving_data(tmp_path_factory: pytest.TempPathFactory, pseudonymize: Pseudonymizer) -> Dataset:
    directory = dense_slice(
        SHIPPED / "amazon_beauty", tmp_path_factory.mktemp("serving"), SERVING_USERS, MIN_ITEM_USERS
    )
    dataset, report = read_benchmark(directory, pseudonymize)
    assert report.rejected == 0
    return dataset


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pipeline's cache_dir: encoder vectors live in cache_dir/encoders, shared by the whole session."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def trained_sasrec(serving_data: Dataset, cache_dir: Path) -> SASRec:
    """A fused SASRec on the slice with real MiniLM item vectors (each user's last item held out for early stopping)."""
    encoder = CachedEncoder(shared_encoder(MODEL_ENCODER), cache_dir / "encoders")
    vectors = encode_catalog(serving_data.catalog, encoder, MODEL_ENCODER.max_chars)
    train, valid = hold_out_last(serving_data.sequences)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the model is tiny; two threads on two busy cores made each step 30x slower
    try:
        model = SASRec(MODEL)
        fit_model(model, TrainData(serving_data.items.size, train, valid, vectors))
    finally:
        torch.set_num_threads(threads)
    return model


@pytest.fixture(scope="session")
def model_dir(trained_sasrec: SASRec, serving_data: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``trained_sasrec`` saved as a model directory."""
    manifest = Manifest(
        model=trained_sasrec.name,
        options=MODEL.model_dump(mode="json"),
        run={"model": trained_sasrec.name, "options": MODEL.model_dump(mode="json")},
        data_name=serving_data.name,
        data_fingerprint=serving_data.fingerprint(),
        n_items=serving_data.n_items,
        metrics={},
        fit_seconds=0.0,
        encoder=MODEL_ENCODER,
        encoder_name=shared_encoder(MODEL_ENCODER).name,
    )
    directory = tmp_path_factory.mktemp("model")
    save_artifact(directory, trained_sasrec, serving_data.items, manifest)
    return directory


@pytest.fixture(scope="session")
def seed_url(serving_data: Dataset) -> Callable[[str], str]:
    """Seeds the (empty) store at a URL of either backend with the slice's catalog and every interaction."""

    def seed(url: str) -> str:
        store = Store(url)
        try:
            seed_store(store, serving_data)
        finally:
            store.close()
        return url

    return seed


@pytest.fixture(scope="session")
def seed_sqlite(seed_url: Callable[[str], str]) -> Callable[[Path], str]:
    """Makes a seeded SQLite store in a directory; gives its URL."""
    return lambda directory: seed_url(f"sqlite:///{directory / 'store.sqlite3'}")


@pytest.fixture
def seeded_store_url(tmp_path: Path, seed_sqlite: Callable[[Path], str]) -> str:
    """A fresh seeded store for each test."""
    return seed_sqlite(tmp_path)


@pytest.fixture
def store(seeded_store_url: str) -> Iterator[Store]:
    store = Store(seeded_store_url)
    yield store
    store.close()


@pytest.fixture
def pipeline(model_dir: Path, store: Store, cache_dir: Path) -> Iterator[Pipeline]:
    """A pipeline over a freshly seeded store. Loading makes torch and BLAS single-threaded; both are put back."""
    threads = torch.get_num_threads()
    with threadpool_limits(limits=None):  # restores the BLAS limits it found on exit
        yield Pipeline.load(model_dir, store, cache_dir=cache_dir)
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def classic_dir(serving_data: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A registry model by name, fit on the slice (last items held out) and saved as a model directory; each
    model is fit once per session, when a test first asks for it."""
    train, _ = hold_out_last(serving_data.sequences)
    directories: dict[str, Path] = {}

    def fitted(name: str) -> Path:
        if name not in directories:
            model = create_model(name, CLASSIC_OPTIONS.get(name, {}))
            fit_model(model, TrainData(serving_data.items.size, train))
            manifest = Manifest(
                model=name,
                options=model.config.model_dump(mode="json"),
                run={"model": name},
                data_name=serving_data.name,
                data_fingerprint=serving_data.fingerprint(),
                n_items=serving_data.n_items,
                metrics={},
                fit_seconds=0.0,
            )
            directories[name] = tmp_path_factory.mktemp(name)
            save_artifact(directories[name], model, serving_data.items, manifest)
        return directories[name]

    return fitted
