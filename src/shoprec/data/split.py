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


def cold_items(n_items: int, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random draws of ``fraction`` of the real items: (cold test items, cold validation items).

    The test draw comes first, so adding the validation draw left the test items of a seed unchanged.
    ``n_items`` is the vocabulary size including padding.
    """
    if not 0 < fraction < 0.5:
        raise ValueError("fraction must be in (0, 0.5): two disjoint draws of it must fit in the catalog")
    rng = np.random.default_rng(seed)
    real_items = np.arange(1, n_items)
    size = max(1, round(fraction * len(real_items)))
    test = rng.choice(real_items, size=size, replace=False)
    valid = rng.choice(np.setdiff1d(real_items, test), size=size, replace=False)
    return np.sort(test), np.sort(valid)


def cold_item_split(sequences: Sequences, n_items: int, fraction: float = 0.1, seed: int = 0) -> Split:
    """The cold-item protocol, with its own cold validation: two disjoint random ``fraction``s of items (see
    ``cold_items``) lose every interaction, one for the test and one for validation.

    Test: the users whose last item is a cold test item; validation: the users whose second-to-last item is a cold
    validation item. Both kinds of cold items are removed from training and from every history ranked from, so a
    model meets them for the first time as candidates: only what it knows beyond interactions (item text) can find
    them. Model selection and early stopping on this split thus measure cold-start skill, on items the test never
    asks for.
    """
    test_items, valid_items = cold_items(n_items, fraction, seed)
    held_out = np.zeros(n_items, dtype=bool)
    held_out[test_items] = held_out[valid_items] = True
    before_test, test = hold_out_last(sequences, min_history=2)
    _, valid = hold_out_last(before_test, min_history=1)
    warm = before_test.keep(~held_out[before_test.items])  # every warm event precedes both targets
    return Split(
        train=warm,
        valid=_with_cold_target(valid, valid_items, warm),
        test=_with_cold_target(test, test_items, warm),
    )


def _with_cold_target(held_out: EvalSet, cold: np.ndarray, warm: Sequences) -> EvalSet:
    """The users of ``held_out`` whose target is in ``cold``, ranked from their warm events (users with none
    are dropped: there is nothing to rank from)."""
    rows = np.flatnonzero(np.isin(held_out.targets.items, cold))  # one target per row
    by_user = np.argsort(warm.users)
    histories = warm.take(by_user[np.searchsorted(warm.users[by_user], held_out.targets.users[rows])])
    keep = np.flatnonzero(histories.lengths() > 0)
    return EvalSet(histories.take(keep), held_out.targets.take(rows[keep]))
