from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)

from shoprec.models.base import evaluating
from shoprec.models.blocks import TransformerBlock


def reference_block(block: TransformerBlock, x: torch.Tensor) -> torch.Tensor:
    """The block written out op by op with its own weights and no dropout: pre-LN, causal softmax attention with
    an explicit mask, residuals, GELU FFN. (B, L, D) -> (B, L, D)."""
    batch, length, dim = x.shape
    heads = block.heads
    normed = F.layer_norm(x, (dim,), block.attention_norm.weight, block.attention_norm.bias)

    def split_heads(linear: torch.nn.Linear) -> torch.Tensor:  # (B, H, L, D/H)
        return (normed @ linear.weight.T + linear.bias).view(batch, length, heads, dim // heads).transpose(1, 2)

    q, k, v = split_heads(block.query), split_heads(block.key), split_heads(block.value)
    logits = q @ k.transpose(-1, -2) / math.sqrt(dim // heads)  # (B, H, L, L)
    future = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
    weights = torch.softmax(logits.masked_fill(future, -math.inf), dim=-1)
    attended = (weights @ v).transpose(1, 2).reshape(batch, length, dim)
    x = x + attended @ block.out.weight.T + block.out.bias
    first, _, second, _ = block.ffn
    hidden = F.layer_norm(x, (dim,), block.ffn_norm.weight, block.ffn_norm.bias) @ first.weight.T + first.bias
    return x + F.gelu(hidden) @ second.weight.T + second.bias


def test_matches_the_reference_computation_without_dropout() -> None:
    """In eval mode a block built with dropout computes exactly its dropout-free formula, for every head layout."""
    torch.manual_seed(0)
    for dim, heads in ((16, 4), (12, 1), (24, 3)):
        block = TransformerBlock(dim=dim, heads=heads, dropout=0.3).eval()
        x = torch.randn(3, 9, dim)
        with torch.no_grad():
            torch.testing.assert_close(block(x), reference_block(block, x), rtol=1e-5, atol=1e-5)


def test_a_dropout_free_block_matches_the_reference_in_training_mode_too() -> None:
    torch.manual_seed(0)
    block = TransformerBlock(dim=8, heads=2, dropout=0.0).train()
    x = torch.randn(2, 6, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), reference_block(block, x), rtol=1e-5, atol=1e-5)


def test_inference_equals_the_module_path_also_after_the_weights_change() -> None:
    """Without autograd a block runs its own inference code (one stacked q/k/v matmul): it must equal the module
    path (eval mode, autograd on) for every head layout, and follow an optimiser step that changes q, k and v."""
    torch.manual_seed(0)
    for dim, heads in ((16, 4), (12, 1), (24, 3)):
        block = TransformerBlock(dim=dim, heads=heads, dropout=0.3).eval()
        x = torch.randn(3, 9, dim)
        optimiser = torch.optim.SGD(block.parameters(), lr=0.5)
        for _ in range(2):
            with torch.inference_mode():
                inferred = block(x)
            through_modules = block(x)
            torch.testing.assert_close(inferred, through_modules.detach(), rtol=0, atol=1e-6)
            through_modules.square().sum().backward()
            optimiser.step()
            optimiser.zero_grad()


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


def test_evaluating_restores_a_network_whose_modules_were_replaced_since_it_first_ran() -> None:
    """Serving lists a network's submodules once; a layer swapped in later (as a privacy wrapper swaps layers)
    must still be switched to eval inside and back to train after."""
    network = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5)).eval()
    with evaluating(network):  # lists the two layers
        pass
    network[1] = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Dropout(0.5))
    network.train()
    with evaluating(network):
        assert not any(module.training for module in network.modules())
    assert all(module.training for module in network.modules())
