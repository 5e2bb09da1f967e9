"""The tests every recommender must pass (lkpy's ScorerTests, implicit's test mixin).

A model's test class inherits ``RecommenderContract``, names its ``model_class`` (and ``options``, validated by
the model's config) and overrides ``test_known_answer`` with scores worked out by hand on ``TINY``.
The model is fit once per class on the leave-one-out training split of the 2,000-user Beauty slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from shoprec.data.dataset import Dataset
from shoprec.data.split import Split, leave_one_out
from shoprec.evaluation.protocol import evaluate, top_k
from shoprec.models.base import Recommender, TrainData, item_popularity
from shoprec.models.pop import Pop
from shoprec.training.fit import fit_model
from shoprec.types import Sequences, Vocabulary

BEAUTY_SEQUENCES = Path(__file__).resolve().parents[1] / "data" / "amazon_beauty" / "sequences.txt"

# A hand-checkable training set: 4 users, items 1..5, user 1 repeats item 1.
#   user 0: 1 2 3    user 1: 1 2 1    user 2: 2 3 4    user 3: 4 5
TINY = Sequences.from_lists([0, 1, 2, 3], [[1, 2, 3], [1, 2, 1], [2, 3, 4], [4, 5]])
TINY_ITEMS = 6  # items 1..5 plus padding


def tiny_data() -> TrainData:
    return TrainData(n_items=TINY_ITEMS, sequences=TINY)


def histories(*rows: Sequence[int] | np.ndarray) -> Sequences:
    return Sequences.from_lists(np.arange(len(rows)), rows)


def beauty_prefix(n_users: int) -> tuple[Sequences, int]:
    """The first ``n_users`` users of the shipped Beauty sequences and the item vocabulary size (padding included)."""
    rows = [line.split()[1:] for line in BEAUTY_SEQUENCES.read_text().splitlines()[:n_users]]
    items = Vocabulary.from_ids(item for row in rows for item in row)
    return Sequences.from_lists(np.arange(len(rows)), [items.lookup(row) for row in rows]), items.size


def validation_ndcg(model: Recommender, split: Split) -> float:
    """NDCG@10 on the validation users through the one evaluation path (full ranking, history excluded)."""
    popularity = item_popularity(split.train, model.n_items)
    return evaluate(model, split.valid, popularity, ks=(10,)).metrics["NDCG@10"]


class RecommenderContract:
    """Mixin: subclasses set ``model_class`` (and ``options``) and implement ``test_known_answer``."""

    model_class: ClassVar[type[Recommender]]
    options: ClassVar[dict[str, object]] = {}
    # Collaborative models know an item only through its training interactions; a model that also reads item
    # text may rank a history of untrained items on its own, and sets this to True.
    knows_untrained_items: ClassVar[bool] = False
    # A model that reads item text sets this; it is then fit with the ``beauty_item_vectors`` fixture.
    needs_item_vectors: ClassVar[bool] = False
    # Users of the Beauty prefix a model is fit on to face Pop; None = the 2,000-user slice. There items have 2.5
    # training interactions each and popularity beats item neighbourhoods whatever their options (validation
    # NDCG@10: ItemKNN .0117, Pop .0146); a collaborative model that needs more evidence names a larger prefix
    # (10,000 users: ItemKNN .0241, ALS .0207, Pop .0071).
    pop_comparison_users: ClassVar[int | None] = None

    @classmethod
    def make_model(cls) -> Recommender:
        return cls.model_class(cls.model_class.config_class.model_validate(cls.options))

    @pytest.fixture(scope="class")
    @classmethod
    def split(cls, beauty: Dataset) -> Split:
        return leave_one_out(beauty.sequences)

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, beauty: Dataset, split: Split, request: pytest.FixtureRequest) -> Recommender:
        vectors = request.getfixturevalue("beauty_item_vectors") if cls.needs_item_vectors else None
        model = cls.make_model()
        fit_model(
            model,
            TrainData(n_items=beauty.items.size, sequences=split.train, validation=split.valid, item_vectors=vectors),
        )
        return model

    @pytest.fixture(scope="class")
    @classmethod
    def pop_comparison(cls, fitted: Recommender, split: Split) -> tuple[Recommender, Split]:
        """The fitted model and its split for the comparison with Pop: the contract's own unless the class asks
        for a larger Beauty prefix."""
        if cls.pop_comparison_users is None:
            return fitted, split
        sequences, n_items = beauty_prefix(cls.pop_comparison_users)
        larger = leave_one_out(sequences)
        model = cls.make_model()
        fit_model(model, TrainData(n_items=n_items, sequences=larger.train, validation=larger.valid))
        return model, larger

    @pytest.fixture(scope="class")
    @classmethod
    def batch(cls, split: Split) -> Sequences:
        """64 real validation histories and one empty one."""
        return histories(*split.valid.histories.take(np.arange(64)).rows(), [])

    def test_known_answer(self) -> None:
        pytest.fail(f"{type(self).__name__} must check hand-computed scores on TINY")

    def test_scores_are_float32_over_all_items(self, fitted: Recommender, batch: Sequences) -> None:
        scores = fitted.score(batch)
        assert scores.shape == (len(batch), fitted.n_items)
        assert scores.dtype == np.float32
        assert np.isfinite(scores[:, 1:]).all()
        assert not np.isnan(scores[:, 0]).any()

    def test_empty_history_gets_popular_items(self, fitted: Recommender, split: Split) -> None:
        scores = fitted.score(histories([]))
        assert np.isfinite(scores[:, 1:]).all()
        popular = np.argsort(-item_popularity(split.train, fitted.n_items), kind="stable")[:50]
        recommended = top_k(scores, 10, exclude=None)[0]
        assert len(np.intersect1d(recommended, popular)) >= 5

    def test_history_of_untrained_items_ranks_like_an_empty_one(self, fitted: Recommender, split: Split) -> None:
        if self.knows_untrained_items:
            pytest.skip(f"{self.model_class.name} has evidence on items beyond their interactions")
        untrained = np.flatnonzero(item_popularity(split.train, fitted.n_items)[1:] == 0) + 1
        assert len(untrained) > 0  # items that occur only as validation/test targets
        scores = fitted.score(histories([], [int(untrained[0])]))
        np.testing.assert_array_equal(top_k(scores, 10, exclude=None)[1], top_k(scores, 10, exclude=None)[0])

    def test_save_load_gives_identical_scores(self, fitted: Recommender, batch: Sequences, tmp_path: Path) -> None:
        fitted.save(tmp_path / "model")
        loaded = type(fitted).load(tmp_path / "model")
        assert loaded.n_items == fitted.n_items
        assert loaded.config == fitted.config
        np.testing.assert_array_equal(loaded.score(batch), fitted.score(batch))

    def test_batched_scores_match_one_at_a_time(self, fitted: Recommender, batch: Sequences) -> None:
        rows = np.arange(len(batch) - 16, len(batch))  # includes the empty history
        together = fitted.score(batch.take(rows))
        alone = np.vstack([fitted.score(batch.take([row])) for row in rows])
        np.testing.assert_allclose(alone[:, 1:], together[:, 1:], rtol=1e-5, atol=1e-5)

    def test_seen_items_are_never_returned(self, fitted: Recommender, batch: Sequences) -> None:
        ranked = top_k(fitted.score(batch), 10, exclude=batch)
        for row, recommended in enumerate(ranked):
            assert not np.isin(recommended, batch.row(row)).any()
            assert (recommended != 0).all()

    def test_beats_popularity_on_validation(self, pop_comparison: tuple[Recommender, Split]) -> None:
        """A personalised model that cannot beat the most-popular list has learnt nothing worth serving."""
        fitted, split = pop_comparison
        if isinstance(fitted, Pop):
            pytest.skip("popularity is the baseline itself")
        pop = Pop()
        pop.fit(TrainData(n_items=fitted.n_items, sequences=split.train))
        ours, baseline = validation_ndcg(fitted, split), validation_ndcg(pop, split)
        assert ours > baseline, f"{self.model_class.name} validation NDCG@10 {ours:.4f} <= Pop's {baseline:.4f}"

    def test_unfitted_model_refuses_to_score(self) -> None:
        with pytest.raises(RuntimeError, match="not fitted"):
            self.make_model().score(histories([1]))
