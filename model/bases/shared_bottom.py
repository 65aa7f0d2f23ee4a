"""SharedBottom: one shared MLP, one tower per scenario slot."""
from __future__ import annotations

from typing import List

import torch
from torch import Tensor, nn

from model.layers.mlp import SlotLinear, mlp


class SharedBottom(nn.Module):
    def __init__(self, in_dim: int, n_slots: int, n_scenarios: int = 2, out_dim: int = 32,
                 bottom: List[int] = [128, 64]):
        super().__init__()
        self.out_dim = out_dim
        self.bottom = mlp([in_dim] + list(bottom))
        self.tower = SlotLinear(n_slots, bottom[-1], out_dim)

    def forward(self, x: Tensor, scenario: Tensor) -> Tensor:
        return torch.relu(self.tower(self.bottom(x)))
