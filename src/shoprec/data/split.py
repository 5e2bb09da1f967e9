"""Train/validation/test splits. Targets never appear in the training rows they are evaluated against."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoprec.types import Sequences


@dataclass(frozen=True)
class EvalSet:
    """What a model sees (``histories``) and what it must find (``targets``), rows aligned by user."""

    histories: Sequences
    targets: Sequences

    def __post_init__(self) -> None:
        if not np.array_equal(self.histories.users, self.targets.users):
            raise ValueError("histories and targets must list the same users in the same order")

    def __len__(self) -> int:
        return len(self.histories)


@dataclass(frozen=True)
class Split:
    train: Sequences
    valid: EvalSet
    test: EvalSet


def hold_out_last(sequences: Sequences, min_history: int = 1) -> tuple[Sequences, EvalSet]:
    """Hold each user's last item out as a target; rows too short to keep ``min_history`` items stay whole.

    Returns (the sequences without the held-out items, an EvalSet of the users that have a target).
    """
    lengths = sequences.lengths()
    has_target = lengths >= min_history + 1
    cuts = np.where(has_target, lengths - 1, lengths)
    rest, held_out = sequences.split_at(cuts)
    rows = np.flatnonzero(has_target)
    return rest, EvalSet(histories=rest.take(rows), targets=held_out.take(rows))


def leave_one_out(sequences: Sequences) -> Split:
    """Last item = test, second-to-last = validation, the rest = train (users need 3 items to be evaluated).

    The test history is train + validation item, so the validation item is seen at test time, as in the papers.
    Shorter rows are not evaluated and stay whole in train.
    """
    evaluated = sequences.lengths() >= 3
    without_test, test = hold_out_last(sequences, min_history=2)
    lengths = without_test.lengths()
    train, valid_targets = without_test.split_at(np.where(evaluated, lengths - 1, lengths))
    rows = np.flatnonzero(evaluated)
    valid = EvalSet(histories=train.take(rows), targets=valid_targets.take(rows))
    return Split(train=train, valid=valid, test=test)


def temporal_split(sequences: Sequences, valid_fraction: float = 0.1, test_fraction: float = 0.1) -> Split:
    """Global time cut: the last ``test_fraction`` of events (by time) are test targets, the slice before them
    validation targets, and everything earlier is training. Users are evaluated on a window only when they
    have at least one earlier event to build a history from.
    """
    if sequences.timestamps is None:
        raise ValueError("a temporal split needs timestamps; use leave_one_out for order-only data")
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError("valid_fraction and test_fraction must be in (0, 1) and sum below 1")
    stamps = sequences.timestamps
    valid_start, test_start = np.quantile(stamps, [1 - valid_fraction - test_fraction, 1 - test_fraction])
    train = _before(sequences, valid_start)
    history_for_test = _before(sequences, test_start)
    return Split(
        train=train,
        valid=_window(sequences, train, valid_start, test_start),
        test=_window(sequences, history_for_test, test_start, np.inf),
    )


def _before(sequences: Sequences, cut: float) -> Sequences:
    assert sequences.timestamps is not None
    before = sequences.timestamps < cut
    # Rows are chronological, so the events before the cut are a prefix of each row.
    return sequences.split_at(sequences.row_counts(before))[0]


def _window(sequences: Sequences, histories: Sequences, start: float, end: float) -> EvalSet:
    assert sequences.timestamps is not None
    inside = (sequences.timestamps >= start) & (sequences.timestamps < end)
    counts = sequences.row_counts(inside)
    first = histories.lengths()
    _, tail = sequences.split_at(first)
    targets, _ = tail.split_at(counts)
    rows = np.flatnonzero((counts > 0) & (first > 0))
    return EvalSet(histories=histories.take(rows), targets=targets.take(rows))


def cold_item_split(sequences: Sequences, n_items: int, fraction: float = 0.1, seed: int = 0) -> Split:
    """The cold-item protocol: a random ``fraction`` of items loses every interaction before the test, and only
    users whose test item is one of them are evaluated.

    Cold items are removed from training, from validation and from the histories the test ranks from, so a model
    meets them for the first time as candidates: only what it knows beyond interactions (item text) can find them.
    ``n_items`` is the vocabulary size including padding.
    """
    if not 0 < fraction < 1:
        raise ValueError("fraction must be in (0, 1)")
    rng = np.random.default_rng(seed)
    real_items = np.arange(1, n_items)
    is_cold = np.zeros(n_items, dtype=bool)
    is_cold[rng.choice(real_items, size=max(1, round(fraction * len(real_items))), replace=False)] = True
    before_test, test = hold_out_last(sequences, min_history=2)
    warm = before_test.keep(~is_cold[before_test.items])
    train, valid = hold_out_last(warm, min_history=1)
    cold_rows = np.flatnonzero(is_cold[test.targets.items])
    by_user = np.argsort(warm.users)
    histories = warm.take(by_user[np.searchsorted(warm.users[by_user], test.histories.users[cold_rows])])
    keep = np.flatnonzero(histories.lengths() > 0)
    return Split(
        train=train,
        valid=valid,
        test=EvalSet(histories.take(keep), test.targets.take(cold_rows[keep])),
    )
