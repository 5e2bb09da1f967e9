from __future__ import annotations

import numpy as np

from contracts import RecommenderContract, histories, tiny_data
from shoprec.models.itemknn import ItemKNN, ItemKNNConfig


class TestItemKNN(RecommenderContract):
    model_class = ItemKNN
    pop_comparison_users = 10_000  # the 2,000-user slice is too sparse for it to beat popularity (see contracts)

    def test_known_answer(self) -> None:
        model = ItemKNN(ItemKNNConfig(neighbours=2, shrink=1.0))
        model.fit(tiny_data())
        # Users per item (binary): U1={0,1} U2={0,1,2} U3={0,2} U4={2,3} U5={3}.
        # sim(i, j) = |Ui ∩ Uj| / (sqrt|Ui| sqrt|Uj| + 1):
        #   row 1: sim(1,2) = 2/(√2√3+1), sim(1,3) = 1/(√2√2+1) = 1/3            -> both kept
        #   row 2: sim(2,1) = sim(2,3) = 2/(√3√2+1), sim(2,4) = 1/(√3√2+1)        -> item 4 pruned (neighbours=2)
        # History [1, 2, 1] counts item 1 once: score = S[1] + S[2], no self-similarity.
        strong = 2 / (np.sqrt(6) + 1)
        expected = [-np.inf, strong, strong, 1 / 3 + strong, 0, 0]
        np.testing.assert_allclose(model.score(histories([1, 2, 1]))[0], expected, rtol=1e-6)
