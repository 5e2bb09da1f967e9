"""The test targets must never reach fit: the protocol is only honest if this holds."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from shoprec.data.dataset import Dataset
from shoprec.models.base import TrainData
from shoprec.models.pop import Pop
from shoprec.models.registry import MODELS
from shoprec.training.config import RunConfig
from shoprec.training.experiment import run_protocol, train_model


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
