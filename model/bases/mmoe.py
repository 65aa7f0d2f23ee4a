"""MMoE: shared experts, one softmax gate and one tower per scenario slot."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from model.layers.mlp import SlotLinear


class MMoE(nn.Module):
    def __init__(self, in_dim: int, n_slots: int, n_scenarios: int = 2, out_dim: int = 32,
                 n_experts: int = 4, expert_dim: int = 64):
        super().__init__()
        self.out_dim = out_dim
        self.n_slots = n_slots
        self.n_experts = n_experts
        self.expert_dim = expert_dim
        self.experts = nn.Linear(in_dim, n_experts * expert_dim)   # all experts in one matmul
        self.gates = nn.Linear(in_dim, n_slots * n_experts)
        self.tower = SlotLinear(n_slots, expert_dim, out_dim)

    def forward(self, x: Tensor, scenario: Tensor) -> Tensor:
        b = x.size(0)
        experts = torch.relu(self.experts(x)).view(b, self.n_experts, self.expert_dim)
        gates = torch.softmax(self.gates(x).view(b, self.n_slots, self.n_experts), dim=-1)
        mixed = torch.bmm(gates, experts)                         # [B, S, H]
        return torch.relu(self.tower(mixed))
