"""Small dense helpers shared by the layers."""
from __future__ import annotations

from typing import List

import torch
from torch import Tensor, nn


def mlp(dims: List[int], *, last_activation: bool = True) -> nn.Sequential:
    """Linear-ReLU stack through ``dims`` (``[in, h1, ..., out]``)."""
    layers: List[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2 or last_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class SlotLinear(nn.Module):
    """One independent linear map per slot, applied in one einsum.

    ``x [B, S, D_in]`` (or ``[B, D_in]``, shared by all slots) -> ``[B, S, D_out]``.
    """

    def __init__(self, n_slots: int, in_dim: int, out_dim: int):
        super().__init__()
        self.n_slots = n_slots
        self.weight = nn.Parameter(torch.empty(n_slots, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(n_slots, out_dim))
        bound = 1.0 / (in_dim ** 0.5)
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return torch.einsum("bd,sde->bse", x, self.weight) + self.bias
        return torch.einsum("bsd,sde->bse", x, self.weight) + self.bias


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last dim where ``mask > 0``; rows with no valid entry give zeros."""
    valid = mask > 0
    filled = scores.masked_fill(~valid, -1e9)
    weights = torch.softmax(filled, dim=-1)
    return weights * valid.to(weights.dtype)
