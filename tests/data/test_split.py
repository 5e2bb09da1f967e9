"""Splits: targets are held out of the rows a model trains on and of the histories it is evaluated from."""

from __future__ import annotations

import numpy as np
import pytest

from shoprec.data.dataset import Dataset
from shoprec.data.split import cold_item_split, cold_items, hold_out_last, leave_one_out, temporal_split
from shoprec.types import Sequences

ROWS = [[1, 2, 3, 4, 5], [6, 7, 8], [9, 10], [11]]


@pytest.fixture
def sequences() -> Sequences:
    return Sequences.from_lists([1, 2, 3, 4], ROWS)


def test_leave_one_out_holds_out_last_and_second_to_last(sequences: Sequences) -> None:
    split = leave_one_out(sequences)

    assert split.test.targets.rows()[0].tolist() == [5] and split.test.targets.rows()[1].tolist() == [8]
    assert [row.tolist() for row in split.valid.targets.rows()] == [[4], [7]]
    assert [row.tolist() for row in split.test.histories.rows()] == [[1, 2, 3, 4], [6, 7]]
    assert [row.tolist() for row in split.valid.histories.rows()] == [[1, 2, 3], [6]]
    assert split.train.rows()[0].tolist() == [1, 2, 3] and split.train.rows()[1].tolist() == [6]


def test_leave_one_out_evaluates_only_users_with_three_items_and_keeps_the_others_whole(
    sequences: Sequences,
) -> None:
    split = leave_one_out(sequences)

    assert split.test.targets.users.tolist() == split.valid.targets.users.tolist() == [1, 2]
    assert split.train.users.tolist() == [1, 2, 3, 4]
    # Users too short to evaluate lose nothing: their items are training data, not hidden targets.
    assert [row.tolist() for row in split.train.rows()[2:]] == [[9, 10], [11]]


def test_train_rows_are_strict_prefixes_that_never_reach_a_target(sequences: Sequences) -> None:
    split = leave_one_out(sequences)
    evaluated = {int(user) for user in split.test.targets.users}
    for r, user in enumerate(split.train.users):
        full, train = ROWS[r], split.train.row(r).tolist()
        assert train == full[: len(train)]
        if int(user) in evaluated:
            assert len(train) == len(full) - 2


def test_hold_out_last_keeps_rows_too_short_for_a_history(sequences: Sequences) -> None:
    rest, held = hold_out_last(sequences, min_history=2)
    assert held.targets.users.tolist() == [1, 2]
    assert [row.tolist() for row in rest.rows()] == [[1, 2, 3, 4], [6, 7], [9, 10], [11]]


def timed() -> Sequences:
    """Two users interleaved in time 1..10; user 3 acts only in the last window."""
    return Sequences.from_lists(
        [1, 2, 3],
        [[1, 2, 3, 4, 5], [6, 7, 8, 9], [10]],
        timestamps=[[1.0, 3.0, 5.0, 7.0, 9.0], [2.0, 4.0, 6.0, 10.0], [9.5]],
    )


def test_temporal_split_keeps_later_events_out_of_training_and_histories() -> None:
    sequences = timed()
    split = temporal_split(sequences, valid_fraction=0.2, test_fraction=0.2)
    valid_start, test_start = np.quantile(sequences.timestamps, [0.6, 0.8])

    assert split.train.timestamps is not None
    assert split.train.timestamps.max() < valid_start
    for window, start, end in ((split.valid, valid_start, test_start), (split.test, test_start, np.inf)):
        assert window.histories.timestamps is not None and window.targets.timestamps is not None
        assert window.histories.timestamps.max() < start
        assert ((window.targets.timestamps >= start) & (window.targets.timestamps < end)).all()
    # Every event at or after the test cut is a test target (or belongs to a user with no history).
    late = sequences.timestamps[sequences.timestamps >= test_start]
    assert split.test.targets.timestamps is not None
    assert sorted(split.test.targets.timestamps.tolist()) == sorted(t for t in late.tolist() if t != 9.5)
    assert 3 not in split.test.targets.users  # user 3 has no earlier event to build a history from


def test_temporal_split_needs_timestamps(sequences: Sequences) -> None:
    with pytest.raises(ValueError, match="timestamps"):
        temporal_split(sequences)


def test_cold_item_split_hides_cold_items_until_they_are_test_targets(beauty: Dataset) -> None:
    split = cold_item_split(beauty.sequences, beauty.items.size, fraction=0.1, seed=3)
    cold = np.unique(split.test.targets.items)
    assert len(split.test) > 0
    for part in (split.train, split.valid.histories, split.valid.targets, split.test.histories):
        assert not np.isin(part.items, cold).any(), "a cold item leaked before its test"
    full = {int(u): beauty.sequences.row(r) for r, u in enumerate(beauty.sequences.users)}
    for r, user in enumerate(split.test.targets.users):
        assert split.test.targets.row(r)[0] == full[int(user)][-1], "the test target is the user's last item"
    again = cold_item_split(beauty.sequences, beauty.items.size, fraction=0.1, seed=3)
    np.testing.assert_array_equal(again.test.targets.items, split.test.targets.items)


def test_cold_validation_items_are_disjoint_from_cold_test_items_and_absent_from_training(beauty: Dataset) -> None:
    test_items, valid_items = cold_items(beauty.items.size, fraction=0.1, seed=3)
    assert len(test_items) == len(valid_items) == round(0.1 * len(beauty.items))
    assert not np.intersect1d(test_items, valid_items).size
    split = cold_item_split(beauty.sequences, beauty.items.size, fraction=0.1, seed=3)
    held_out = np.concatenate([test_items, valid_items])
    for part in (split.train, split.valid.histories, split.test.histories):
        assert not np.isin(part.items, held_out).any(), "a cold item reached training or a history"
    assert np.isin(split.valid.targets.items, valid_items).all(), "validation asks only for cold validation items"
    assert np.isin(split.test.targets.items, test_items).all(), "the test asks only for cold test items"
    assert len(split.valid) > 100  # enough cold validation users to select on


def test_cold_validation_target_is_the_second_to_last_item_ranked_from_the_warm_items_before_it(
    beauty: Dataset,
) -> None:
    split = cold_item_split(beauty.sequences, beauty.items.size, fraction=0.1, seed=3)
    test_items, valid_items = cold_items(beauty.items.size, fraction=0.1, seed=3)
    warm = ~np.isin(np.arange(beauty.items.size), np.concatenate([test_items, valid_items]))
    full = {int(u): beauty.sequences.row(r) for r, u in enumerate(beauty.sequences.users)}
    for r, user in enumerate(split.valid.targets.users):
        row = full[int(user)]
        before_test = row[:-1] if len(row) >= 3 else row
        assert split.valid.targets.row(r).tolist() == [before_test[-1]]
        assert split.valid.histories.row(r).tolist() == [i for i in before_test[:-1] if warm[i]]


def test_cold_items_keeps_the_test_draw_of_a_seed_and_refuses_fractions_that_cannot_be_drawn_twice() -> None:
    first, _ = cold_items(1001, fraction=0.1, seed=0)
    legacy = np.random.default_rng(0).choice(np.arange(1, 1001), size=100, replace=False)  # the test-only draw
    np.testing.assert_array_equal(first, np.sort(legacy))
    with pytest.raises(ValueError, match="fraction"):
        cold_items(1001, fraction=0.5)
