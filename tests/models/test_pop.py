from __future__ import annotations

import numpy as np

from contracts import RecommenderContract, histories, tiny_data
from shoprec.models.pop import Pop


class TestPopularity(RecommenderContract):
    model_class = Pop

    def test_known_answer(self) -> None:
        model = Pop()
        model.fit(tiny_data())
        # Interactions per item, repeats included: item 1 = 1 + 2 (user 1 twice), item 2 = 3, item 3 = 2,
        # item 4 = 2, item 5 = 1. Every history gets the same row.
        expected = np.array([-np.inf, 3, 3, 2, 2, 1], dtype=np.float32)
        scores = model.score(histories([1], [], [4, 5]))
        np.testing.assert_array_equal(scores, np.tile(expected, (3, 1)))
