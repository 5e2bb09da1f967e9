from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from contracts import RecommenderContract, histories, tiny_data
from shoprec.models.blend import Blend, BlendConfig
from shoprec.models.itemknn import ItemKNN, ItemKNNConfig
from shoprec.models.pop import Pop
from shoprec.training.fit import fit_model

KNN_AND_POP = {"parts": [{"model": "itemknn", "options": {"neighbours": 2, "shrink": 1.0}}, {"model": "pop"}]}


def fitted_blend(weight: float) -> Blend:
    blend = Blend(BlendConfig.model_validate({**KNN_AND_POP, "weight": weight}))
    fit_model(blend, tiny_data())
    return blend


class TestBlend(RecommenderContract):
    model_class = Blend
    # the weight chosen on the slice's validation; three weights keep the contract's two fits quick
    options: ClassVar[dict[str, object]] = {"parts": [{"model": "itemknn"}, {"model": "pop"}], "grid": [0.0, 0.5, 1.0]}
    pop_comparison_users = 10_000  # as ItemKNN's: on the 2,000-user slice popularity beats item neighbourhoods

    def test_known_answer(self) -> None:
        """Half and half on TINY, history [1, 2, 1]: each part's scores (their own tests check them) standardised
        over items 1..5 with the population standard deviation, then averaged."""
        blend = fitted_blend(0.5)
        knn = ItemKNN(ItemKNNConfig(neighbours=2, shrink=1.0))
        pop = Pop()
        for part in (knn, pop):
            part.fit(tiny_data())
        history = histories([1, 2, 1])
        a, b = knn.score(history)[0, 1:].astype(np.float64), pop.score(history)[0, 1:].astype(np.float64)
        expected = 0.5 * (a - a.mean()) / a.std() + 0.5 * (b - b.mean()) / b.std()
        scores = blend.score(history)[0]
        assert scores[0] == -np.inf
        np.testing.assert_allclose(scores[1:], expected, rtol=1e-6)


@pytest.mark.parametrize(("weight", "part"), [(1.0, 0), (0.0, 1)])
def test_weights_one_and_zero_return_that_part_exactly(weight: float, part: int) -> None:
    blend = fitted_blend(weight)
    batch = histories([1, 2, 1], [4], [])
    np.testing.assert_array_equal(blend.score(batch), blend.parts[part].score(batch))


def test_settle_keeps_the_grids_best_weight_and_a_fixed_one_untouched() -> None:
    free = Blend(BlendConfig.model_validate(KNN_AND_POP))
    fit_model(free.parts[0], tiny_data())
    asked: list[float] = []
    best = free.settle(lambda weight: asked.append(weight) or -((weight - 0.3) ** 2))
    assert (free.weight, best) == (0.3, 0.0) and asked == [round(0.1 * step, 1) for step in range(11)]
    assert free.config.weight == 0.3  # what the manifest and result records show
    fixed = Blend(BlendConfig.model_validate({**KNN_AND_POP, "weight": 0.8}))
    fixed.settle(lambda weight: -((weight - 0.3) ** 2))
    assert fixed.weight == 0.8


def test_a_blend_without_validation_or_weight_is_refused() -> None:
    with pytest.raises(ValueError, match="validation"):
        fit_model(Blend(BlendConfig.model_validate(KNN_AND_POP)), tiny_data())


def test_saved_blend_holds_its_parts_and_weight(tmp_path: Path) -> None:
    blend = fitted_blend(0.7)
    blend.save(tmp_path / "blend")
    loaded = Blend.load(tmp_path / "blend")
    assert loaded.weight == 0.7 and [type(p) for p in loaded.parts] == [ItemKNN, Pop]
    batch = histories([1, 2, 1], [4, 5])
    np.testing.assert_array_equal(loaded.score(batch), blend.score(batch))
