"""SASRec (Kang & McAuley 2018) trained with full softmax cross-entropy over every item at every position.

Klenitskiy & Vasilev (RecSys 2023) show that this loss, not the architecture, is what lets SASRec beat BERT4Rec;
the original binary loss with one sampled negative leaves most of the catalog untrained. For catalogs too large
for a full softmax, ``loss = "sampled"`` shares ``n_negatives`` uniform negatives across the batch.

Differentially private training (``sample_losses``) needs ``output = "separate"``: Opacus's ghost clipping, which
computes each user's gradient norm without materialising a (B, n_items, D) per-user gradient (7 s a step on
Beauty, against 0.6 s), cannot clip a weight used twice, as the tied item table is (input and output).
"""

from __future__ import annotations

from typing import Any, Literal, Self

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from shoprec.config import Config
from shoprec.models.base import (
    DataShape,
    EmbeddingModel,
    TrainableRecommender,
    TrainData,
    TrainerConfig,
    evaluating,
    finish_scores,
    item_popularity,
)
from shoprec.models.blocks import TransformerBlock
from shoprec.models.embedding import ItemEmbedding, ItemMode
from shoprec.models.losses import full_softmax_cross_entropy, sampled_softmax_cross_entropy
from shoprec.types import PADDING, Sequences

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, targets): (B, L) right-padded item indices each
POOL_BATCHES = 32  # batches whose rows are sorted by length together: less padding, still shuffled
RULE_STEPS = 3000  # optimiser steps the default-config rule schedules (about what the three tuned configs take)


class SASRecConfig(Config):
    max_len: int = Field(default=50, ge=1)  # most recent items read from a history
    dim: int = Field(default=64, ge=1)  # width of item vectors and hidden states
    layers: int = Field(default=2, ge=1)  # Transformer blocks
    heads: int = Field(default=2, ge=1)  # attention heads; must divide dim
    dropout: float = Field(default=0.2, ge=0, lt=1)  # on embeddings, attention weights and residual branches
    attention_dropout: float | None = Field(default=None, ge=0, lt=1)  # on attention weights only; None = dropout
    item_mode: ItemMode = "fused"  # id | text | fused: how an item becomes a vector (text needs item vectors)
    loss: Literal["ce", "sampled"] = "ce"  # full softmax over all items, or sampled softmax
    n_negatives: int = Field(default=256, ge=1)  # uniform negatives shared by a batch when loss = "sampled"
    # tied: one item table embeds inputs and scores outputs; separate: an output table of its own (id mode only)
    output: Literal["tied", "separate"] = "tied"
    train_positions: int | None = Field(default=None, ge=1)  # targets per row: its latest k; None = all of them
    # latest: one row per user, their latest max_len + 1 items; all: the whole history cut into such windows from
    # its end, so every interaction but a user's first is a target exactly once per epoch
    windows: Literal["latest", "all"] = "latest"
    # dot: logits are inner products; cosine: states and item vectors L2-normalised, logits divided by temperature
    similarity: Literal["dot", "cosine"] = "dot"
    temperature: float = Field(default=0.05, gt=0)  # of cosine logits; a smaller one sharpens the softmax
    train: TrainerConfig = TrainerConfig()

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> Self:
        if self.dim % self.heads != 0:
            raise ValueError(f"dim ({self.dim}) must be divisible by heads ({self.heads})")
        if self.output == "separate" and self.item_mode != "id":
            raise ValueError(f"output = 'separate' needs item_mode = 'id', not {self.item_mode!r}")
        if self.output == "separate" and self.similarity == "cosine":
            raise ValueError("similarity = 'cosine' needs output = 'tied': a separate output layer is not normalised")
        return self


class SASRecNetwork(nn.Module):
    """Item vectors + learned recency positions -> causal Transformer blocks -> final LayerNorm."""

    def __init__(
        self, config: SASRecConfig, n_items: int, trained: torch.Tensor, text_vectors: torch.Tensor | None
    ) -> None:
        super().__init__()
        self.items = ItemEmbedding(config.item_mode, n_items, config.dim, trained, text_vectors)
        self.positions = nn.Embedding(config.max_len, config.dim)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(config.dim, config.heads, config.dropout, config.attention_dropout)
            for _ in range(config.layers)
        )
        self.norm = nn.LayerNorm(config.dim)
        # lifts the small-initialised item vectors above the positions; unit-length (cosine) rows need no lift
        self.scale = 1.0 if config.similarity == "cosine" else config.dim**0.5
        self.temperature = config.temperature if config.similarity == "cosine" else None
        self.output: nn.Linear | None = None
        if config.output == "separate":
            self.output = nn.Linear(config.dim, n_items, bias=False)
            nn.init.normal_(self.output.weight, std=0.02)

    def forward(
        self, inputs: torch.Tensor, table: torch.Tensor | None = None, read: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) right-padded item indices -> (B, L, D) states, position t reading items <= t, and the (I, D) item
        table that scores them: ``table`` when given (inference), else the training table. A loss thus gets both
        from one call of the module the Trainer holds, and a wrapper around it (DDP, Opacus) sees every parameter
        used. With ``read`` ((B, k) positions; separate output only), the first part is instead the (B, k, I)
        logits of the states at those positions, made by the output layer, so a per-example wrapper sees it too.
        """
        if table is None:
            table = self.training_table()
        lengths = (inputs != PADDING).sum(dim=1, keepdim=True)  # (B, 1)
        # Positions count back from the latest item, so the state read for scoring always has position 0.
        recency = (lengths - 1 - torch.arange(inputs.shape[1], device=inputs.device)).clamp(min=0)  # (B, L)
        # A separate output reads inputs through the embedding layer itself: Opacus sees only module calls.
        items = table[inputs] if self.output is None else self.items.ids(inputs)  # type: ignore[misc]
        x = self.dropout(items * self.scale + self.positions(recency))  # (B, L, D)
        for block in self.blocks:
            x = block(x)
        hidden = self.norm(x)
        if self.temperature is not None:  # the temperature goes into the state, so state · item is the logit
            hidden = nn.functional.normalize(hidden, dim=-1) / self.temperature
        if read is None:
            return hidden, table
        if self.output is None:
            raise ValueError("reading logits at positions needs output = 'separate'")
        rows = torch.arange(len(read), device=read.device)[:, None]
        return self.output(hidden[rows, read]), table  # (B, k, I)

    def training_table(self) -> torch.Tensor:  # (I, D)
        """The table the training loss scores with: the item table, or the separate output's rows of items seen
        in training (the rest score 0, as in the tied item table)."""
        if self.output is None:
            return self.shaped(self.items.table(inference=False))
        trained: torch.Tensor = self.items.get_buffer("trained")
        return self.output.weight * trained[:, None]

    def shaped(self, table: torch.Tensor) -> torch.Tensor:
        """Item rows as logits use them: unit length under cosine similarity (rows that are zero stay zero)."""
        return table if self.temperature is None else nn.functional.normalize(table, dim=-1)


class SASRec(TrainableRecommender[Batch], EmbeddingModel):
    """Next-item prediction from the last ``max_len`` items; score = last hidden state · every item vector."""

    name = "sasrec"
    config_class = SASRecConfig
    config: SASRecConfig

    def __init__(self, config: SASRecConfig | None = None) -> None:
        super().__init__(config)
        self._network: SASRecNetwork | None = None
        self._popularity = np.zeros(0, dtype=np.float32)  # (n_items,) training counts: ranks empty histories

    @classmethod
    def options_for(cls, shape: DataShape) -> dict[str, Any]:
        """The default-config rule, read off the three tuned configs (Beauty, Scientific, MovieLens-1M; see
        docs/benchmarks.md): fused item vectors when there is text; heavy dropout on sparse data (under 50
        interactions an item); a wider model for a larger catalog; histories read to 200 items only where the
        longest tenth exceed 50; about ``RULE_STEPS`` optimiser steps (10 to 100 epochs, cosine decay over them)
        with early stopping on validation NDCG@10."""
        batch_size = TrainerConfig().batch_size
        steps = max(1, -(-shape.n_users // batch_size))
        return {
            "item_mode": "fused" if shape.has_text else "id",
            "max_len": 50 if shape.long_history <= 50 else 200,
            "dim": 128 if shape.n_items >= 10_000 else 64,
            "dropout": 0.5 if shape.n_interactions < 50 * shape.n_items else 0.2,
            "attention_dropout": 0.0,  # lets the CPU run its fused attention kernel: about twice as fast
            "train": {
                "epochs": min(100, max(10, round(RULE_STEPS / steps))),
                "lr": 0.002,
                "warmup_steps": 200,
                "eval_every": 2,
                "patience": 3,
            },
        }

    @property
    def uses_item_text(self) -> bool:
        return self.config.item_mode != "id"

    @property
    def history_window(self) -> int:
        return self.config.max_len

    @property
    def trainer_config(self) -> TrainerConfig:
        return self.config.train

    def build(self, data: TrainData) -> nn.Module:
        vectors = None
        if self.config.item_mode != "id" and data.item_vectors is not None:
            vectors = torch.from_numpy(np.asarray(data.item_vectors, dtype=np.float32))
        self._popularity = item_popularity(data.sequences, data.n_items)
        trained = torch.from_numpy(self._popularity > 0)
        if data.private:  # keep no counts: every item counts as trained, empty histories get no ranking of their own
            self._popularity = np.zeros(data.n_items, dtype=np.float32)
            trained = torch.arange(data.n_items) > 0
        self._network = SASRecNetwork(self.config, data.n_items, trained, vectors)
        self.n_items = data.n_items
        return self._network

    def batches(self, sequences: Sequences, batch_size: int, generator: torch.Generator) -> list[Batch]:
        """Each row's last ``max_len + 1`` items (every window of them, with ``windows = "all"``): every item but
        the last is an input, the next one its target."""
        if self.config.windows == "all":
            sequences = history_windows(sequences, self.config.max_len + 1)
        windows = right_padded(sequences, self.config.max_len + 1)  # (R, L + 1)
        targets = windows[:, 1:]  # (R, L)
        inputs = np.where(targets != PADDING, windows[:, :-1], PADDING)  # the latest item has no target
        lengths = (targets != PADDING).sum(axis=1)  # (R,)
        useful = np.flatnonzero(lengths > 0)  # rows with at least one (input, target) pair
        order = useful[torch.randperm(len(useful), generator=generator).numpy()]
        # Sort by length within pools of POOL_BATCHES random batches, so a batch pads only to about its own rows'
        # length (most histories are far shorter than max_len), then shuffle the batches.
        pool = np.arange(len(order)) // (batch_size * POOL_BATCHES)
        order = order[np.lexsort((lengths[order], pool))]
        starts = np.arange(0, len(order), batch_size)
        starts = starts[torch.randperm(len(starts), generator=generator).numpy()]
        batches = []
        for start in starts:
            rows = order[start : start + batch_size]
            width = int(lengths[rows].max())  # trailing all-padding columns dropped
            batch = (np.ascontiguousarray(inputs[rows, :width]), np.ascontiguousarray(targets[rows, :width]))
            batches.append((torch.from_numpy(batch[0]), torch.from_numpy(batch[1])))
        return batches

    def loss(self, network: nn.Module, batch: Batch, generator: torch.Generator) -> torch.Tensor:
        inputs, targets = batch
        hidden, table = network(inputs)  # (B, L, D), (I, D) training table
        real = targets != PADDING
        if self.config.train_positions is not None:  # only each row's latest k targets
            lengths = real.sum(dim=1, keepdim=True)  # (B, 1)
            real &= torch.arange(targets.shape[1], device=targets.device) >= lengths - self.config.train_positions
        states, wanted = hidden[real], targets[real]  # (N, D), (N,): only positions with a target
        if self.config.loss == "ce":
            return full_softmax_cross_entropy(states, table[1:], wanted - 1)  # every real item; row 0 is padding
        return sampled_softmax_cross_entropy(states, table, wanted, self.config.n_negatives, generator)

    def sample_losses(self, network: nn.Module, batch: Batch, generator: torch.Generator) -> torch.Tensor:
        """(B,) each row's mean cross-entropy over its latest ``train_positions`` targets, against every item: the
        full softmax, with no item drawn for the batch as a whole, so each row's loss depends on its row alone."""
        if self.config.loss != "ce" or self.config.output != "separate" or self.config.windows != "latest":
            raise ValueError(
                "a per-user loss (DP-SGD) needs loss = 'ce', output = 'separate' and windows = 'latest' "
                "(one row per user)"
            )
        inputs, targets = batch
        read, valid = self._latest_targets(targets)  # (B, k) positions, (B, k) whether each is a real target
        read = torch.where(valid, read, 0)
        logits, _ = network(inputs, read=read)  # (B, k, I)
        trained: torch.Tensor = self._built().items.get_buffer("trained")
        logits = logits[..., 1:] * trained[1:]  # padding excluded; untrained items score 0, as in ``loss``
        wanted = targets.gather(1, read) - 1  # (B, k)
        nll = torch.logsumexp(logits, dim=-1) - logits.gather(-1, wanted[..., None]).squeeze(-1)  # (B, k)
        return (nll * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)

    def _latest_targets(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, k) positions of each row's latest ``train_positions`` targets (all: k = width), and (B, k) whether
        each is a real one (a short row has fewer)."""
        k = min(self.config.train_positions or targets.shape[1], targets.shape[1])
        lengths = (targets != PADDING).sum(dim=1, keepdim=True)  # (B, 1)
        positions = lengths - k + torch.arange(k, device=targets.device)  # (B, k)
        return positions, positions >= 0

    def score(self, histories: Sequences) -> np.ndarray:
        self._check_fitted()
        table = self.item_table()
        return finish_scores(self.user_vectors(histories, table) @ table.T, self._popularity)

    @property
    def popularity(self) -> np.ndarray:
        return self._popularity

    def item_table(self, new_text: np.ndarray | None = None) -> np.ndarray:
        """The inference table, in any module mode. New items are placed exactly as items unseen in training are
        (see ``ItemEmbedding.place_by_text``)."""
        network = self._built()
        items = network.items
        with torch.inference_mode():
            if network.output is not None:  # id mode only, so never a new item to place
                if new_text is not None and len(new_text) > 0:
                    items.place_by_text(torch.from_numpy(np.asarray(new_text, np.float32)))  # raises the error
                return network.training_table().cpu().numpy()
            table = items.table(inference=True)
            if new_text is not None and len(new_text) > 0:
                text = torch.from_numpy(np.asarray(new_text, np.float32)).to(table.device)
                table = torch.cat([table, items.place_by_text(text)])
            return network.shaped(table).cpu().numpy()

    def user_vectors(self, histories: Sequences, table: np.ndarray) -> np.ndarray:
        """The last hidden state over each history's latest ``max_len`` items."""
        self._check_fitted()
        network = self._built()
        # In id mode an item without training interactions has no vector: reading it would only add noise.
        known = None
        if self.config.item_mode == "id":
            known = np.zeros(len(table), dtype=bool)
            known[: self.n_items] = network.items.get_buffer("trained").cpu().numpy()
        windows = right_padded(histories, self.config.max_len, known)  # (B, L)
        lengths = (windows != PADDING).sum(axis=1)  # (B,)
        vectors = np.zeros((len(histories), table.shape[1]), dtype=np.float32)  # empty rows stay zero
        rows = np.flatnonzero(lengths > 0)
        if len(rows) > 0:
            device = network.positions.weight.device
            inputs = torch.from_numpy(windows[rows, : lengths.max()]).to(device)  # (B', L')
            last = torch.from_numpy(lengths[rows] - 1).to(device)  # (B',)
            with evaluating(network):
                hidden, _ = network(inputs, torch.from_numpy(table).to(device))  # (B', L', D)
                vectors[rows] = hidden[torch.arange(len(rows), device=device), last].cpu().numpy()
        return vectors

    def _built(self) -> SASRecNetwork:
        if self._network is None:
            raise RuntimeError(f"{self.name} is not fitted")
        return self._network

    def _state(self) -> dict[str, np.ndarray]:
        weights = {f"network.{k}": v.detach().cpu().numpy() for k, v in self._built().state_dict().items()}
        return {**weights, "popularity": self._popularity}

    def _restore(self, state: dict[str, np.ndarray]) -> None:
        weights = {k.removeprefix("network."): torch.from_numpy(v) for k, v in state.items() if k != "popularity"}
        self._network = SASRecNetwork(self.config, self.n_items, weights["items.trained"], weights.get("items.text"))
        self._network.load_state_dict(weights)
        self._network.eval()  # a loaded model only scores: no mode switch per request (see ``evaluating``)
        self._popularity = state["popularity"]


def right_padded(sequences: Sequences, width: int, keep: np.ndarray | None = None) -> np.ndarray:
    """(R, width) int64: each row's last ``width`` items, oldest first, then PADDING; no loop over rows.

    ``keep`` ((n_items,) bool), when given, drops the items it marks False before the window is taken.
    """
    items, indptr = sequences.items, sequences.indptr
    if keep is not None:
        kept = keep[items]
        items = items[kept]
        indptr = np.concatenate([[0], np.cumsum(kept)])[indptr]
    ends = indptr[1:]
    starts = np.maximum(indptr[:-1], ends - width)
    offsets = np.arange(width)
    valid = offsets < (ends - starts)[:, None]  # (R, width)
    padded = np.full((len(ends), width), PADDING, dtype=np.int64)
    padded[valid] = items[(starts[:, None] + offsets)[valid]]
    return padded


def history_windows(sequences: Sequences, width: int) -> Sequences:
    """Each row cut from its end into windows of at most ``width`` items, each window beginning with the last
    item of the one before it: every item but a row's first is a target (an item after the first) in exactly one
    window. No loop over rows."""
    lengths = np.diff(sequences.indptr)
    step = width - 1  # targets per full window
    counts = np.where(lengths > 1, -(-(lengths - 1) // step), 0)  # windows per row
    rows = np.repeat(np.arange(len(lengths)), counts)
    back = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)  # 0 for a row's latest window
    ends = sequences.indptr[1:][rows] - back * step
    starts = np.maximum(sequences.indptr[:-1][rows], ends - width)
    sizes = ends - starts
    indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    positions = np.repeat(starts - indptr[:-1], sizes) + np.arange(indptr[-1])
    return Sequences(sequences.users[rows], indptr, sequences.items[positions])
