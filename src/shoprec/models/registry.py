"""Every recommender by name: the one place a config's ``model = "..."`` turns into a class."""

from __future__ import annotations

from collections.abc import Mapping

from shoprec.models.als import ALS
from shoprec.models.base import Recommender
from shoprec.models.blend import Blend
from shoprec.models.content import Content
from shoprec.models.itemknn import ItemKNN
from shoprec.models.pop import Pop
from shoprec.models.sasrec import SASRec
from shoprec.models.userknn import UserKNN

MODELS: dict[str, type[Recommender]] = {
    Pop.name: Pop,
    ItemKNN.name: ItemKNN,
    UserKNN.name: UserKNN,
    ALS.name: ALS,
    Content.name: Content,
    SASRec.name: SASRec,
    Blend.name: Blend,
}


def model_class(name: str) -> type[Recommender]:
    """The class registered under ``name``; an unknown name is an error that lists the valid ones."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(sorted(MODELS))}") from None


def create_model(name: str, options: Mapping[str, object] | None = None) -> Recommender:
    """An unfitted model; ``options`` go through its config class, so an unknown key raises a ValidationError
    that names it.
    """
    cls = model_class(name)
    return cls(cls.config_class.model_validate(dict(options or {})))
