"""The chunked full-softmax loss must be the plain cross-entropy, value and gradients, at any row count."""

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from shoprec.models.losses import CHUNK_ROWS, full_softmax_cross_entropy, sampled_softmax_cross_entropy


@pytest.mark.parametrize("rows", [1, CHUNK_ROWS, 2 * CHUNK_ROWS + 37])
def test_chunked_cross_entropy_matches_the_plain_one(rows: int) -> None:
    generator = torch.Generator().manual_seed(rows)
    states = torch.randn(rows, 16, generator=generator, dtype=torch.float64, requires_grad=True)
    table = torch.randn(300, 16, generator=generator, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 300, (rows,), generator=generator)

    plain = F.cross_entropy(states @ table.T, targets)
    plain_grads = torch.autograd.grad(plain, (states, table))
    chunked = full_softmax_cross_entropy(states, table, targets)
    chunked_grads = torch.autograd.grad(chunked, (states, table))

    torch.testing.assert_close(chunked, plain)
    for got, expected in zip(chunked_grads, plain_grads, strict=True):
        torch.testing.assert_close(got, expected)


def test_gradient_check_through_a_scaled_loss() -> None:
    """gradcheck: the backward pass is the derivative of the forward one, upstream gradient included."""
    generator = torch.Generator().manual_seed(0)
    states = torch.randn(CHUNK_ROWS + 5, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    table = torch.randn(7, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 7, (CHUNK_ROWS + 5,), generator=generator)
    assert torch.autograd.gradcheck(lambda s, t: 3 * full_softmax_cross_entropy(s, t, targets), (states, table))


def test_sampled_softmax_is_the_cross_entropy_over_the_target_and_the_generators_draws() -> None:
    generator = torch.Generator().manual_seed(0)
    states = torch.randn(5, 4, generator=generator, dtype=torch.float64)
    table = torch.randn(50, 4, generator=generator, dtype=torch.float64)
    targets = torch.tensor([3, 7, 7, 20, 49])
    loss = sampled_softmax_cross_entropy(states, table, targets, 6, torch.Generator().manual_seed(1))
    negatives = torch.randint(1, 50, (6,), generator=torch.Generator().manual_seed(1))  # the same draws
    logits = torch.cat([(states * table[targets]).sum(1, keepdim=True), states @ table[negatives].T], dim=1)
    logits[:, 1:][negatives[None, :] == targets[:, None]] = float("-inf")  # a drawn target is not a negative
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.zeros(5, dtype=torch.long)))
