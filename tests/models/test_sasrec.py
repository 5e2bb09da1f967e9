from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from contracts import RecommenderContract, histories
from shoprec.data.dataset import Dataset
from shoprec.data.split import Split, leave_one_out
from shoprec.evaluation.protocol import evaluate, top_k
from shoprec.models.base import DataShape, TrainData, item_popularity
from shoprec.models.pop import Pop
from shoprec.models.sasrec import SASRec, SASRecConfig, history_windows, right_padded
from shoprec.training.fit import fit_model
from shoprec.types import Sequences

# Small enough that a fit on the 2,000-user Beauty slice takes seconds on two cores. The slice is so sparse (about
# three training interactions per item) that popularity is a strong baseline: heavy dropout and small batches are
# what let the Transformer clear it. One thread: on two busy cores (tests run beside other work) two threads made
# a fused epoch 8x slower (21 s, not 2.6 s).
SMALL: dict[str, Any] = {
    "item_mode": "id",
    "dim": 64,
    "layers": 1,
    "heads": 2,
    "dropout": 0.5,
    "max_len": 20,
    "train": {
        "epochs": 6,
        "batch_size": 32,
        "lr": 1e-3,
        "warmup_steps": 10,
        "eval_every": 2,
        "patience": 2,
        "threads": 1,
    },
}


def cycles(n_users: int = 40, n_items: int = 5, length: int = 12) -> Sequences:
    """Every user walks 1 -> 2 -> ... -> n_items -> 1 -> ..., starting somewhere else: the next item is certain."""
    rows = [[(start + step) % n_items + 1 for step in range(length)] for start in range(n_users)]
    return Sequences.from_lists(np.arange(n_users), rows)


def small(**changes: Any) -> SASRecConfig:
    return SASRecConfig.model_validate({**SMALL, **changes})


def fit_cycles(config: SASRecConfig) -> SASRec:
    model = SASRec(config)
    fit_model(model, TrainData(n_items=6, sequences=cycles()))
    return model


CYCLE_CONFIG: dict[str, Any] = {
    "dim": 16,
    "max_len": 8,
    "dropout": 0.0,
    "train": {"epochs": 30, "batch_size": 8, "lr": 1e-2, "warmup_steps": 5, "threads": 1},
}


class TestSASRec(RecommenderContract):
    model_class = SASRec
    options = SMALL

    def test_known_answer(self) -> None:
        model = fit_cycles(small(**CYCLE_CONFIG))
        scores = model.score(histories([1, 2, 3], [5], [3, 4], [4, 5, 1, 2]))
        np.testing.assert_array_equal(top_k(scores, 1)[:, 0], [4, 1, 5, 3])

    def test_beats_popularity_on_validation(self, fitted: SASRec, split: Split) -> None:
        popularity = item_popularity(split.train, fitted.n_items)
        pop = Pop()
        pop.fit(TrainData(n_items=fitted.n_items, sequences=split.train))
        ours = evaluate(fitted, split.valid, popularity, ks=(10,)).metrics["NDCG@10"]
        baseline = evaluate(pop, split.valid, popularity, ks=(10,)).metrics["NDCG@10"]
        assert ours > baseline

    def test_real_positions_ignore_trailing_padding(self, fitted: SASRec) -> None:
        network = fitted._built().eval()
        inputs = torch.tensor([[5, 9, 2, 0, 0, 0, 0]])  # (1, 7) right-padded
        with torch.inference_mode():
            table = network.items.table(inference=True)
            padded, short = network(inputs, table)[0], network(inputs[:, :3], table)[0]
            torch.testing.assert_close(padded[:, :3], short, rtol=0, atol=1e-6)


def test_sampled_softmax_learns_the_cycle_too() -> None:
    model = fit_cycles(small(**CYCLE_CONFIG, loss="sampled", n_negatives=3))
    scores = model.score(histories([1, 2, 3], [5]))
    np.testing.assert_array_equal(top_k(scores, 1)[:, 0], [4, 1])


def test_right_padded_keeps_the_latest_items_oldest_first() -> None:
    rows = Sequences.from_lists([0, 1, 2], [[1, 2, 3], [], [4, 5, 6, 7, 8]])
    np.testing.assert_array_equal(right_padded(rows, 3), [[1, 2, 3], [0, 0, 0], [6, 7, 8]])
    keep = np.array([False, True, False, True, True, True, True, False, True])  # drop items 2 and 7
    np.testing.assert_array_equal(right_padded(rows, 3, keep), [[1, 3, 0], [0, 0, 0], [5, 6, 8]])


def test_every_target_is_the_next_item_and_every_row_is_used_once() -> None:
    rows = Sequences.from_lists([0, 1, 2], [[1, 2, 3, 4], [5], [6, 7]])  # the 1-item row has nothing to predict
    model = SASRec(SASRecConfig(item_mode="id", max_len=2))
    model.build(TrainData(n_items=8, sequences=rows))
    batches = model.batches(rows, batch_size=8, generator=torch.Generator().manual_seed(0))
    inputs, targets = (torch.cat([b[i] for b in batches]) for i in (0, 1))
    pairs = {tuple(map(tuple, (x.tolist(), y.tolist()))) for x, y in zip(inputs, targets, strict=True)}
    assert pairs == {((2, 3), (3, 4)), ((6, 0), (7, 0))}  # last max_len + 1 items; padding has no target


def test_history_windows_cut_from_the_end_and_share_one_item() -> None:
    rows = Sequences.from_lists([0, 1, 2, 3], [[1, 2, 3, 4, 5, 6, 7], [8], [9, 10], []])
    windows = history_windows(rows, 3)
    assert [row.tolist() for row in windows.rows()] == [[5, 6, 7], [3, 4, 5], [1, 2, 3], [9, 10]]
    np.testing.assert_array_equal(windows.users, [0, 0, 0, 2])


def training_pairs(model: SASRec, rows: Sequences) -> list[tuple[int, int]]:
    """Every (input item, target item) pair of one epoch's batches, at the positions that have a target."""
    pairs = []
    for inputs, targets in model.batches(rows, batch_size=64, generator=torch.Generator().manual_seed(0)):
        real = targets != 0
        pairs += list(zip(inputs[real].tolist(), targets[real].tolist(), strict=True))
    return pairs


def test_all_windows_make_every_interaction_but_a_users_first_a_target_once_per_epoch(beauty: Dataset) -> None:
    rows = beauty.sequences
    model = SASRec(SASRecConfig(item_mode="id", max_len=4, windows="all"))
    model.build(TrainData(n_items=beauty.items.size, sequences=rows))
    consecutive = Counter((int(before), int(after)) for row in rows.rows() for before, after in itertools.pairwise(row))
    pairs = training_pairs(model, rows)
    assert len(pairs) == rows.n_interactions - int((np.diff(rows.indptr) > 0).sum())
    assert Counter(pairs) == consecutive  # each target once, right after the item it follows in the history
    assert max(np.diff(rows.indptr)) > 5  # the slice has histories longer than a window
    latest = SASRec(SASRecConfig(item_mode="id", max_len=4))
    latest.build(TrainData(n_items=beauty.items.size, sequences=rows))
    assert len(training_pairs(latest, rows)) < len(pairs)  # the default reads each user's latest 5 items only


def unit_vectors(n_items: int, dim: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n_items, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[0] = 0.0
    return vectors


@pytest.fixture(scope="module")
def cold(beauty: Dataset) -> tuple[SASRec, int, int, Sequences]:
    """Text mode fit with one item's interactions removed; that item shares its text with a popular item."""
    split = leave_one_out(beauty.sequences)
    train = split.train
    counts = item_popularity(train, beauty.items.size)
    twin = int(np.argmax(counts))  # the most popular item
    trained = np.flatnonzero(counts[1:] > 0) + 1
    unseen = int(trained[len(trained) // 2])  # an ordinary trained item, about to lose every interaction
    keep = np.ones(beauty.items.size, dtype=bool)
    keep[unseen] = False
    without = Sequences.from_lists(train.users, [row[keep[row]] for row in train.rows()])
    vectors = unit_vectors(beauty.items.size, 24)
    vectors[unseen] = vectors[twin]
    model = SASRec(small(item_mode="text", train={**SMALL["train"], "epochs": 2}))
    fit_model(model, TrainData(n_items=beauty.items.size, sequences=without, item_vectors=vectors))
    return model, unseen, twin, split.valid.histories


def test_text_mode_ranks_an_item_never_seen_in_training(cold: tuple[SASRec, int, int, Sequences]) -> None:
    model, unseen, twin, valid = cold
    assert model._popularity[unseen] == 0
    rows = valid.take(np.flatnonzero([not np.isin([unseen, twin], row).any() for row in valid.rows()])[:200])
    scores = model.score(rows)
    assert np.isfinite(scores[:, unseen]).all()
    # known by its text alone: equal up to float32 rounding (the two columns sit in different matmul blocks)
    np.testing.assert_allclose(scores[:, unseen], scores[:, twin], rtol=1e-6)
    ranked = top_k(scores, 50, exclude=rows)
    twin_in_top = (ranked[:, :49] == twin).any(axis=1)
    assert twin_in_top.sum() >= 10
    assert (ranked[twin_in_top] == unseen).any(axis=1).all()  # ranked right beside its twin


def test_text_mode_round_trips_with_its_vectors(cold: tuple[SASRec, int, int, Sequences], tmp_path: Path) -> None:
    model, _, _, valid = cold
    model.save(tmp_path / "model")
    loaded = SASRec.load(tmp_path / "model")
    batch = valid.take(np.arange(32))
    np.testing.assert_array_equal(loaded.score(batch), model.score(batch))


def test_an_item_added_after_training_scores_like_its_text_twin(cold: tuple[SASRec, int, int, Sequences]) -> None:
    """Serving adds catalog items by text: a new row with the twin's text must score as the twin does, and a
    history that holds the new item must read it like the twin."""
    model, _, twin, valid = cold
    text = model._built().items.get_buffer("text").numpy()
    table = model.item_table(text[[twin]])  # one new item, index n_items
    new = model.n_items
    assert table.shape[0] == model.n_items + 1
    np.testing.assert_allclose(table[new], table[twin], atol=1e-6)
    batch = valid.take(np.arange(16))
    users = model.user_vectors(batch, table)
    np.testing.assert_allclose((users @ table[:new].T)[:, 1:], model.score(batch)[:, 1:], atol=1e-4)
    with_new = Sequences.from_lists(np.arange(2), [[int(batch.row(0)[-1]), new], [int(batch.row(0)[-1]), twin]])
    vectors = model.user_vectors(with_new, table)
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-5)


def test_an_id_mode_model_refuses_new_items() -> None:
    model = fit_cycles(
        SASRecConfig.model_validate(CYCLE_CONFIG | {"item_mode": "id", "train": {"epochs": 1, "threads": 1}})
    )
    assert model.item_table().shape == (6, 16)
    with pytest.raises(ValueError, match="cannot place new items"):
        model.item_table(np.ones((1, 8), dtype=np.float32))


def test_fused_mode_gives_an_untrained_item_only_its_text() -> None:
    vectors = unit_vectors(7, 8)
    model = SASRec(SASRecConfig(item_mode="fused", dim=8, heads=2))
    model.build(TrainData(n_items=7, sequences=Sequences.from_lists([0], [[1, 2, 3, 4, 5]]), item_vectors=vectors))
    items = model._built().items
    assert items.ids is not None and items.projection is not None
    with torch.no_grad():
        items.ids.weight.normal_()  # make every id vector visible
        table = items.table(inference=False)
        text_only = items.projection(torch.from_numpy(vectors))
    torch.testing.assert_close(table[6], text_only[6])  # item 6: no interaction, no id vector
    assert not torch.allclose(table[3], text_only[3])  # item 3: id + text
    torch.testing.assert_close(table[0], torch.zeros(8))  # padding


def test_at_inference_an_untrained_fused_item_borrows_the_id_part_of_its_text_neighbours() -> None:
    """Without interactions a fused item has only its projected text, which sits below every trained item's id +
    text vector; at inference it borrows the id vectors of its nearest trained items by text."""
    torch.manual_seed(0)
    vectors = unit_vectors(7, 8)
    vectors[6] = vectors[2]  # item 6 (no interactions) reads exactly like item 2
    model = SASRec(SASRecConfig(item_mode="fused", dim=8, heads=2))
    model.build(TrainData(n_items=7, sequences=Sequences.from_lists([0], [[1, 2, 3, 4, 5]]), item_vectors=vectors))
    items = model._built().items
    assert items.ids is not None
    with torch.no_grad():
        items.ids.weight.normal_()
        training = items.table(inference=False)
        serving = items.table(inference=True)
        placed = items.place_by_text(torch.from_numpy(vectors[[2]]))
    torch.testing.assert_close(serving[:6], training[:6])  # trained items and padding are untouched
    borrowed = items.borrowed_ids(torch.from_numpy(vectors[[6]]))[0]
    torch.testing.assert_close(serving[6], training[6] + borrowed)
    twin_id = items.ids.weight[2]
    assert torch.dot(borrowed, twin_id) > 0  # the nearest neighbour (cosine 1) weighs most
    torch.testing.assert_close(placed[0], serving[6])  # an item added later is placed the same way


def test_text_modes_need_item_vectors() -> None:
    model = SASRec(SASRecConfig(item_mode="fused"))
    with pytest.raises(ValueError, match="needs item text vectors"):
        model.build(TrainData(n_items=6, sequences=cycles()))


def test_config_rejects_unknown_keys_and_bad_heads() -> None:
    with pytest.raises(ValidationError, match="epoch"):
        SASRecConfig.model_validate({"train": {"epoch": 3}})
    with pytest.raises(ValidationError, match="divisible"):
        SASRecConfig(dim=10, heads=3)


@pytest.fixture(scope="module")
def fused(beauty: Dataset, beauty_item_vectors: np.ndarray) -> tuple[SASRec, Sequences, np.ndarray]:
    """A fused model fit briefly with a tenth of the trained items held out of training (text, no id vector),
    and 48 validation histories that hold such items."""
    split = leave_one_out(beauty.sequences)
    trained = np.flatnonzero(item_popularity(split.train, beauty.items.size)[1:] > 0) + 1
    untrained = np.random.default_rng(0).choice(trained, size=len(trained) // 10, replace=False)
    kept = ~np.isin(split.train.items, untrained)
    model = SASRec(small(item_mode="fused", train={**SMALL["train"], "epochs": 1, "batch_size": 128}))
    fit_model(model, TrainData(beauty.items.size, split.train.keep(kept), item_vectors=beauty_item_vectors))
    histories = split.valid.histories
    holding = np.flatnonzero(histories.row_counts(np.isin(histories.items, untrained)) > 0)
    return model, histories.take(holding[:48]), untrained


def test_a_fused_model_scores_untrained_items_alike_in_either_mode_and_after_loading(
    fused: tuple[SASRec, Sequences, np.ndarray], tmp_path: Path
) -> None:
    """Scoring must not depend on the module's train/eval mode (validation runs mid-training, a loaded network
    starts in train mode) and must leave that mode as it found it."""
    model, batch, untrained = fused
    assert (model.popularity[untrained] == 0).all()
    model.save(tmp_path / "model")
    loaded = SASRec.load(tmp_path / "model")
    scores, modes_kept = [], []
    for scorer in (model, loaded):
        for training in (True, False):
            scorer._built().train(training)
            scores.append(scorer.score(batch))
            modes_kept.append(all(module.training == training for module in scorer._built().modules()))
    for other in scores[1:]:
        np.testing.assert_array_equal(other, scores[0])
    assert all(modes_kept)
    # The untrained columns are the ones at stake: at inference they carry borrowed id parts.
    with torch.inference_mode():
        training_table = model._built().items.table(inference=False).numpy()
    assert not np.allclose(model.item_table()[untrained], training_table[untrained])


def test_fused_scores_are_user_vectors_times_the_item_table_in_either_mode(
    fused: tuple[SASRec, Sequences, np.ndarray],
) -> None:
    """What serving computes from the two halves must be what evaluation ranks by."""
    model, batch, _ = fused
    for training in (True, False):
        model._built().train(training)
        table = model.item_table()
        by_halves = model.user_vectors(batch, table) @ table.T
        np.testing.assert_array_equal(model.score(batch)[:, 1:], by_halves[:, 1:])


def test_sampled_softmax_draws_its_negatives_from_the_given_generator() -> None:
    model = SASRec(small(**CYCLE_CONFIG, loss="sampled", n_negatives=2))
    network = model.build(TrainData(n_items=6, sequences=cycles())).eval()  # eval: no dropout draws
    batch = model.batches(cycles(), batch_size=8, generator=torch.Generator().manual_seed(0))[0]
    losses = []
    for seed in (0, 0, 1, 2, 3):
        torch.rand(seed + 3)  # the global RNG moves between calls; the loss must not care
        losses.append(float(model.loss(network, batch, torch.Generator().manual_seed(seed)).detach()))
    assert losses[0] == losses[1]
    assert len(set(losses[1:])) > 1  # other seeds draw other negatives


def test_a_separate_output_table_learns_the_cycle_and_survives_save_load(tmp_path: Path) -> None:
    model = fit_cycles(small(**CYCLE_CONFIG, output="separate"))
    queries = histories([1, 2, 3], [5], [3, 4], [4, 5, 1, 2])
    np.testing.assert_array_equal(top_k(model.score(queries), 1)[:, 0], [4, 1, 5, 3])
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(SASRec.load(tmp_path / "m").score(queries), model.score(queries))


def test_a_separate_output_needs_item_ids_only() -> None:
    with pytest.raises(ValidationError, match="item_mode = 'id'"):
        small(output="separate", item_mode="fused")


def test_with_one_train_position_the_batch_loss_is_the_mean_of_the_per_user_losses() -> None:
    model = SASRec(small(**CYCLE_CONFIG, output="separate", train_positions=1))
    rows = cycles(n_users=6, length=5)
    network = model.build(TrainData(n_items=6, sequences=rows)).eval()
    (batch,) = model.batches(rows, 6, torch.Generator().manual_seed(0))
    with torch.no_grad():
        per_user = model.sample_losses(network, batch, torch.Generator())  # through the output layer's module
        torch.testing.assert_close(model.loss(network, batch, torch.Generator()), per_user.mean())


def test_a_tied_item_table_has_no_per_user_loss() -> None:
    model = SASRec(small(**CYCLE_CONFIG))
    rows = cycles(n_users=6, length=5)
    network = model.build(TrainData(n_items=6, sequences=rows))
    (batch,) = model.batches(rows, 6, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="separate"):
        model.sample_losses(network, batch, torch.Generator())


COSINE: dict[str, Any] = {**SMALL, "similarity": "cosine", "temperature": 0.1, "train": {**SMALL["train"], "epochs": 2}}


@pytest.fixture(scope="module")
def cosine(beauty: Dataset) -> tuple[SASRec, Sequences]:
    """A model with normalised logits, fit on the Beauty slice, and a batch of its validation histories."""
    split = leave_one_out(beauty.sequences)
    model = SASRec(SASRecConfig.model_validate(COSINE))
    fit_model(model, TrainData(n_items=beauty.items.size, sequences=split.train))
    return model, split.valid.histories.take(np.arange(64))


def test_cosine_logits_learn_the_cycle() -> None:
    model = fit_cycles(small(**CYCLE_CONFIG, similarity="cosine", temperature=0.1))
    scores = model.score(histories([1, 2, 3], [5], [3, 4], [4, 5, 1, 2]))
    np.testing.assert_array_equal(top_k(scores, 1)[:, 0], [4, 1, 5, 3])


def test_a_cosine_score_is_the_cosine_over_the_temperature(cosine: tuple[SASRec, Sequences]) -> None:
    model, batch = cosine
    table = model.item_table()
    norms = np.linalg.norm(table, axis=1)
    np.testing.assert_allclose(norms[norms > 0], 1.0, rtol=1e-5)
    vectors = model.user_vectors(batch, table)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1 / 0.1, rtol=1e-5)
    scores = model.score(batch)
    np.testing.assert_allclose(scores[:, 1:], (vectors @ table.T)[:, 1:], rtol=1e-5, atol=1e-5)
    assert np.abs(scores[:, 1:]).max() <= 1 / 0.1 + 1e-4


def test_cosine_scores_batched_equal_one_at_a_time(cosine: tuple[SASRec, Sequences]) -> None:
    model, batch = cosine
    batched = model.score(batch)
    for row in range(0, len(batch), 9):
        np.testing.assert_allclose(model.score(batch.take([row]))[0], batched[row], rtol=1e-5, atol=1e-4)


def test_cosine_scores_survive_save_load(cosine: tuple[SASRec, Sequences], tmp_path: Path) -> None:
    model, batch = cosine
    model.save(tmp_path / "m")
    loaded = SASRec.load(tmp_path / "m")
    assert loaded.config.similarity == "cosine"
    np.testing.assert_array_equal(loaded.score(batch), model.score(batch))


def test_cosine_logits_need_the_tied_table() -> None:
    with pytest.raises(ValidationError, match="cosine"):
        small(similarity="cosine", output="separate")


def test_a_per_user_loss_needs_one_row_per_user() -> None:
    model = SASRec(small(**CYCLE_CONFIG, output="separate", windows="all"))
    rows = cycles(n_users=6, length=5)
    network = model.build(TrainData(n_items=6, sequences=rows))
    (batch,) = model.batches(rows, 64, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="one row per user"):
        model.sample_losses(network, batch, torch.Generator())


@pytest.mark.parametrize(
    ("shape", "chosen"),
    [  # training splits of the shipped sets (sizes as counted in docs/benchmarks.md), and the tuned configs' picks
        (DataShape(22_363, 12_101, 153_776, 13, True), ("fused", 50, 128, 0.5, 17)),  # Beauty: tuned 14 epochs
        (DataShape(8_442, 4_385, 42_836, 9, True), ("fused", 50, 64, 0.5, 45)),  # Scientific: tuned 40
        (DataShape(6_040, 3_706, 988_129, 400, True), ("fused", 200, 64, 0.2, 62)),  # MovieLens-1M: tuned 100
        (DataShape(35_598, 18_357, 225_141, 11, False), ("id", 50, 128, 0.5, 11)),  # Sports: no item text
    ],
)
def test_the_default_rule_reads_mode_width_dropout_and_schedule_off_the_data(
    shape: DataShape, chosen: tuple[str, int, int, float, int]
) -> None:
    options = SASRec.options_for(shape)
    config = SASRecConfig.model_validate(options)  # the rule's options are valid ones
    assert (config.item_mode, config.max_len, config.dim, config.dropout, config.train.epochs) == chosen
    assert (config.attention_dropout, config.train.patience, config.train.eval_every) == (0.0, 3, 2)
