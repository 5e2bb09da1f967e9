from __future__ import annotations

import pytest
import torch

from shoprec.models.blocks import TransformerBlock


@pytest.fixture
def block() -> TransformerBlock:
    torch.manual_seed(0)
    return TransformerBlock(dim=16, heads=4, dropout=0.0).eval()


def test_a_position_never_sees_the_future(block: TransformerBlock) -> None:
    x = torch.randn(3, 10, 16)  # (B, L, D)
    changed = x.clone()
    changed[:, 6:] = torch.randn(3, 4, 16)  # rewrite positions 6..9
    before, after = block(x), block(changed)
    torch.testing.assert_close(after[:, :6], before[:, :6], rtol=0, atol=1e-6)
    assert not torch.allclose(after[:, 6:], before[:, 6:])  # the rewritten positions do change


def test_outputs_do_not_depend_on_trailing_padding(block: TransformerBlock) -> None:
    x = torch.randn(2, 5, 16)
    padded = torch.cat([x, torch.zeros(2, 7, 16)], dim=1)  # right padding: 7 extra positions
    out = block(padded)
    torch.testing.assert_close(out[:, :5], block(x), rtol=0, atol=1e-6)
    assert torch.isfinite(out).all()  # padding rows see position 0, so none is an empty softmax


def test_dropout_only_in_training_mode() -> None:
    torch.manual_seed(0)
    block = TransformerBlock(dim=8, heads=2, dropout=0.5)
    x = torch.randn(2, 4, 8)
    block.eval()
    torch.testing.assert_close(block(x), block(x))
    block.train()
    assert not torch.allclose(block(x), block(x))


def test_heads_must_divide_dim() -> None:
    with pytest.raises(ValueError, match="divisible"):
        TransformerBlock(dim=10, heads=3, dropout=0.0)
