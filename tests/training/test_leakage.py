"""The test targets must never reach fit, and every read of them is on the ledger: the protocol is only honest if
this holds."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from shoprec.data.dataset import Dataset
from shoprec.data.split import cold_items
from shoprec.evaluation.ledger import Ledger
from shoprec.models.base import TrainData
from shoprec.models.pop import Pop
from shoprec.models.registry import MODELS
from shoprec.training.config import RunConfig
from shoprec.training.experiment import run_protocol, train_model, tune


class SpyPop(Pop):
    """Popularity that records every sequence it was fit on."""

    name = "spy"
    seen: ClassVar[list[TrainData]] = []

    def fit(self, data: TrainData) -> None:
        SpyPop.seen.append(data)
        super().fit(data)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> type[SpyPop]:
    monkeypatch.setitem(MODELS, "spy", SpyPop)
    SpyPop.seen = []
    return SpyPop


def _rows_by_user(data: TrainData) -> dict[int, list[int]]:
    return {int(u): data.sequences.row(r).tolist() for r, u in enumerate(data.sequences.users)}


def test_protocol_fits_on_strict_prefixes_without_valid_or_test_items(beauty: Dataset, spy: type[SpyPop]) -> None:
    run_protocol(beauty, RunConfig(model="spy"))
    (fitted,) = spy.seen
    rows = _rows_by_user(fitted)
    for r, user in enumerate(beauty.sequences.users):
        full = beauty.sequences.row(r).tolist()
        assert rows[int(user)] == full[:-2], "train must end before the validation and test items"
    assert fitted.validation is not None
    targets = fitted.validation.targets
    total_test_positions = len(beauty.sequences)
    assert fitted.sequences.n_interactions == beauty.sequences.n_interactions - 2 * total_test_positions
    # validation targets are each user's second-to-last item, never the last
    for r in range(len(targets)):
        user = int(targets.users[r])
        full = beauty.sequences.row(int(np.flatnonzero(beauty.sequences.users == user)[0])).tolist()
        assert targets.row(r).tolist() == [full[-2]]


def test_train_command_holds_out_only_the_last_item(beauty: Dataset, spy: type[SpyPop]) -> None:
    train_model(beauty, RunConfig(model="spy"))
    (fitted,) = spy.seen
    rows = _rows_by_user(fitted)
    for r, user in enumerate(beauty.sequences.users):
        assert rows[int(user)] == beauty.sequences.row(r).tolist()[:-1]


def test_each_protocol_run_records_exactly_one_test_read(beauty: Dataset, spy: type[SpyPop], tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "reads.jsonl")
    first = run_protocol(beauty, RunConfig(model="spy"), ledger=ledger)
    second = run_protocol(beauty, RunConfig(model="spy"), ledger=ledger)
    other = run_protocol(beauty, RunConfig(model="spy", split="cold_items"), ledger=ledger)
    entries = ledger.entries()
    assert len(entries) == 3
    assert (first.test_reads, second.test_reads, other.test_reads) == (1, 2, 1)
    assert {e.data_fingerprint for e in entries} == {beauty.fingerprint()}
    assert [e.split for e in entries] == ["leave_one_out", "leave_one_out", "cold_items"]
    assert entries[0].n_users == len(first.test.per_user["HR@10"])


def test_tune_and_train_never_record_a_test_read(beauty: Dataset, spy: type[SpyPop], ledger_path: Path) -> None:
    tune(beauty, RunConfig(model="spy"))
    tune(beauty, RunConfig(model="spy", split="cold_items"))
    train_model(beauty, RunConfig(model="spy"))
    assert not ledger_path.exists()
    run_protocol(beauty, RunConfig(model="spy"))  # the default ledger: $SHOPREC_TEST_LEDGER in tests
    assert len(ledger_path.read_text().splitlines()) == 1


def test_cold_item_tuning_validates_on_cold_validation_items_only(beauty: Dataset, spy: type[SpyPop]) -> None:
    run = RunConfig(model="spy", split="cold_items", cold_fraction=0.1, split_seed=3)
    selection = tune(beauty, run)
    (fitted,) = spy.seen
    assert fitted.validation is not None
    test_items, valid_items = cold_items(beauty.items.size, 0.1, 3)
    assert np.isin(fitted.validation.targets.items, valid_items).all()
    assert not np.isin(fitted.sequences.items, np.concatenate([test_items, valid_items])).any()
    assert selection.best.valid.n_users == len(fitted.validation)
    assert selection.best.valid.metrics["HR@10"] == 0  # popularity cannot find an item it never saw
