"""Item vectors from ids, from text, or both: the switch between collaborative and cold-start-capable models."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

ItemMode = Literal["id", "text", "fused"]
BORROWED_NEIGHBOURS = 10  # trained items whose id vectors an item known only by text borrows


class ItemEmbedding(nn.Module):
    """The (n_items, D) item matrix, used both to embed history items and to score every item (tied weights).

    ``id``: a learned vector per item. ``text``: the frozen text vector through a learned linear projection, so
    an item never seen in training still gets a meaningful row. ``fused``: id + projected text.
    An item without training interactions has no id vector (its id part is zero): it is known only by its text.
    Row 0 (padding) is always zero.
    """

    def __init__(
        self,
        mode: ItemMode,
        n_items: int,
        dim: int,
        trained: torch.Tensor,  # (n_items,) bool: items with at least one training interaction
        text_vectors: torch.Tensor | None = None,  # (n_items, T) float32, row 0 zeros
    ) -> None:
        super().__init__()
        if mode != "id" and text_vectors is None:
            raise ValueError(f"item mode {mode!r} needs item text vectors; use item mode 'id' without them")
        if trained.shape != (n_items,):
            raise ValueError(f"trained mask has shape {tuple(trained.shape)}, expected ({n_items},)")
        self.mode = mode
        real = trained.clone()
        real[0] = False
        self.register_buffer("trained", real)
        self.ids = nn.Embedding(n_items, dim, padding_idx=0) if mode != "text" else None
        if self.ids is not None:
            nn.init.normal_(self.ids.weight, std=0.02)
        self.projection: nn.Linear | None = None
        if mode != "id":
            assert text_vectors is not None
            if text_vectors.shape[0] != n_items:
                raise ValueError(f"text vectors have {text_vectors.shape[0]} rows for {n_items} items")
            self.register_buffer("text", text_vectors.to(torch.float32).clone())
            self.projection = nn.Linear(text_vectors.shape[1], dim)

    def table(self, *, inference: bool) -> torch.Tensor:  # (n_items, D)
        """Every item's vector; differentiable, so compute it once per step and reuse it for input and output.

        The loss asks for the training table (``inference=False``), every scoring path for the inference table,
        whatever mode the module is in. They differ only for a fused item without training interactions: at
        inference it also borrows an id part (``borrowed_ids``), since with its projected text alone it would sit
        below every trained item, whose id part the softmax has grown. Training leaves it out: such an item is
        never a target, and borrowing would send its negatives' gradient into its neighbours' id vectors.
        """
        known: torch.Tensor = self.get_buffer("trained")
        rows = torch.zeros((), device=known.device)
        if self.ids is not None:
            rows = self.ids.weight * known[:, None]  # (I, D)
        if self.projection is not None:
            real = torch.arange(len(known), device=known.device) > 0
            text: torch.Tensor = self.get_buffer("text")
            rows = rows + self.projection(text) * real[:, None]  # (I, D)
            cold = real & ~known
            if self.ids is not None and inference and bool(cold.any()):
                borrowed = torch.zeros_like(rows)
                borrowed[cold] = self.borrowed_ids(text[cold])
                rows = rows + borrowed
        return rows

    def place_by_text(self, text: torch.Tensor) -> torch.Tensor:  # (m, D)
        """Vectors for items added after training, from their (m, T) text vectors: as an untrained item's."""
        if self.projection is None:
            raise ValueError("an id-mode model cannot place new items: train with item_mode text or fused")
        rows = self.projection(text)
        return rows if self.ids is None else rows + self.borrowed_ids(text)

    def borrowed_ids(self, text: torch.Tensor) -> torch.Tensor:  # (m, D)
        """The id part of items known only by text: the mean id vector of their ``BORROWED_NEIGHBOURS`` nearest
        trained items in text space, weighted by (positive) cosine, so a new item scores like what it resembles."""
        assert self.ids is not None
        known: torch.Tensor = self.get_buffer("trained")
        candidates = known.nonzero(as_tuple=True)[0]
        if len(candidates) == 0:
            return torch.zeros((len(text), self.ids.embedding_dim), device=text.device)
        similarity = text @ self.get_buffer("text")[candidates].T  # (m, n)
        values, nearest = similarity.topk(min(BORROWED_NEIGHBOURS, len(candidates)), dim=1)  # (m, k)
        weights = values.clamp(min=0)
        weights = weights / weights.sum(dim=1, keepdim=True).clamp(min=1e-12)
        return (weights[..., None] * self.ids.weight[candidates[nearest]]).sum(dim=1)  # (m, D)
