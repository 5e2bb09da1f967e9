"""A model named without a config gets its default-config rule, read off the training split's shape only."""

from __future__ import annotations

import numpy as np

from shoprec.cli.models import run_config
from shoprec.data.dataset import Dataset
from shoprec.data.split import leave_one_out
from shoprec.models.base import DataShape
from shoprec.models.sasrec import SASRec
from shoprec.training.config import RunConfig
from shoprec.training.experiment import with_data_defaults


def test_the_rule_fills_what_the_run_leaves_out_from_the_training_split(beauty: Dataset) -> None:
    train = leave_one_out(beauty.sequences).train
    run = with_data_defaults(RunConfig(model="sasrec", options={"dim": 32}, options_from_data=True), beauty, train)
    shape = DataShape.of(train, beauty.items.size, has_text=True)
    assert run.options == {**SASRec.options_for(shape), "dim": 32}  # what the run says wins
    lengths = np.diff(train.indptr)
    assert shape == DataShape(
        len(train), beauty.items.size - 1, int(lengths.sum()), int(np.percentile(lengths, 90)), True
    )
    assert run.options["item_mode"] == "fused"  # the slice's items have titles


def test_a_config_or_a_model_without_a_rule_is_left_as_it_is(beauty: Dataset) -> None:
    train = leave_one_out(beauty.sequences).train
    configured = RunConfig(model="sasrec", options={"dim": 32})
    assert with_data_defaults(configured, beauty, train) is configured
    assert with_data_defaults(RunConfig(model="itemknn", options_from_data=True), beauty, train).options == {}


def test_naming_only_a_model_asks_for_the_rule() -> None:
    assert run_config("sasrec", None).options_from_data
    assert "options_from_data" not in RunConfig(model="sasrec").identity()  # records made before the rule still match
