from __future__ import annotations

import pytest
from pydantic import ValidationError

from shoprec.models.itemknn import ItemKNN, ItemKNNConfig
from shoprec.models.registry import MODELS, create_model, model_class


def test_every_model_is_registered_under_its_own_name() -> None:
    assert set(MODELS) >= {"pop", "itemknn", "userknn", "als"}
    for name, cls in MODELS.items():
        assert cls.name == name


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown model 'sasrek'") as error:
        model_class("sasrek")
    for name in MODELS:
        assert name in str(error.value)


def test_create_model_validates_options_through_the_config() -> None:
    model = create_model("itemknn", {"neighbours": 7})
    assert isinstance(model, ItemKNN)
    assert model.config == ItemKNNConfig(neighbours=7)
    assert create_model("itemknn").config == ItemKNNConfig()


def test_unknown_option_is_an_error_that_names_it() -> None:
    with pytest.raises(ValidationError, match="neighbors"):
        create_model("itemknn", {"neighbors": 7})


def test_wrongly_typed_option_is_rejected() -> None:
    with pytest.raises(ValidationError, match="shrink"):
        create_model("itemknn", {"shrink": "lots"})
