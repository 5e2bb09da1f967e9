from __future__ import annotations

import numpy as np

from contracts import RecommenderContract, histories
from shoprec.models.als import ALS, ALSConfig
from shoprec.models.base import TrainData
from shoprec.types import Sequences

# Two disjoint tastes: items 1-3 are bought together, items 4-5 together, item 6 by nobody.
CLUSTERS = Sequences.from_lists(range(8), [[1, 2, 3], [1, 2], [2, 3], [1, 3], [1, 2, 3], [4, 5], [4, 5], [5, 4]])


class TestALS(RecommenderContract):
    model_class = ALS
    pop_comparison_users = 10_000  # the 2,000-user slice is too sparse for it to beat popularity (see contracts)

    def test_known_answer(self) -> None:
        model = ALS(ALSConfig(factors=4, regularization=0.1, alpha=10.0, num_threads=1))
        model.fit(TrainData(n_items=7, sequences=CLUSTERS))
        scores = model.score(histories([1], [4]))
        # A fold-in from item 1 lands in the first cluster: its partners outrank the other cluster...
        assert scores[0, [2, 3]].min() > scores[0, [4, 5, 6]].max()
        # ...and from item 4 the reverse.
        assert scores[1, 5] > scores[1, [1, 2, 3, 6]].max()
        # An item nobody bought carries no factor, so it scores exactly 0 for everyone.
        np.testing.assert_array_equal(scores[:, 6], 0)

    def test_same_seed_same_model(self) -> None:
        first, second = ALS(ALSConfig(num_threads=1)), ALS(ALSConfig(num_threads=1))
        for model in (first, second):
            model.fit(TrainData(n_items=7, sequences=CLUSTERS))
        np.testing.assert_array_equal(first.score(histories([1, 2])), second.score(histories([1, 2])))
