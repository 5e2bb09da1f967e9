from __future__ import annotations

import numpy as np

from contracts import RecommenderContract, histories, tiny_data
from shoprec.models.userknn import UserKNN, UserKNNConfig


class TestUserKNN(RecommenderContract):
    model_class = UserKNN

    def test_known_answer(self) -> None:
        model = UserKNN(UserKNNConfig(neighbours=2, shrink=0.0))
        model.fit(tiny_data())
        # History [1, 3, 3] is the set {1, 3}, |h| = 2. Training rows (binary): X0={1,2,3} X1={1,2} X2={2,3,4} X3={4,5}.
        # sim(h, v) = |h ∩ Xv| / (√|h| √|Xv|): v0 = 2/(√2√3), v1 = 1/(√2√2) = 1/2, v2 = 1/(√2√3), v3 = 0.
        # neighbours=2 keeps v0 and v1 (v2 pruned, so item 4 gets nothing):
        #   item 1 = item 2 = 2/√6 + 1/2, item 3 = 2/√6, items 4, 5 = 0.
        top = 2 / np.sqrt(6)
        expected = [-np.inf, top + 0.5, top + 0.5, top, 0, 0]
        np.testing.assert_allclose(model.score(histories([1, 3, 3]))[0], expected, rtol=1e-6)

    def test_shrink_damps_similarity(self) -> None:
        model = UserKNN(UserKNNConfig(neighbours=1, shrink=1.0))
        model.fit(tiny_data())
        # History {5}: only X3={4,5} overlaps, sim = 1/(√1·√2 + 1); items 4 and 5 get it.
        sim = 1 / (np.sqrt(2) + 1)
        np.testing.assert_allclose(model.score(histories([5]))[0, 1:], [0, 0, 0, sim, sim], rtol=1e-6)
