"""M2M: experts, then per slot a meta attention over the expert views and a meta tower,
whose weights are generated from the scenario (slot) representation (meta units)."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn


class MetaUnit(nn.Module):
    """Generates a [in, out] weight and an [out] bias from the scenario representation z."""

    def __init__(self, z_dim: int, in_dim: int, out_dim: int):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = out_dim
        self.weight_gen = nn.Linear(z_dim, in_dim * out_dim)
        self.bias_gen = nn.Linear(z_dim, out_dim)
        self.base_weight = nn.Parameter(torch.empty(in_dim, out_dim))
        nn.init.xavier_uniform_(self.base_weight)
        nn.init.normal_(self.weight_gen.weight, std=0.01)
        nn.init.zeros_(self.weight_gen.bias)

    def forward(self, z: Tensor) -> Tuple[Tensor, Tensor]:
        s = z.size(0)
        weight = self.base_weight.unsqueeze(0) + self.weight_gen(z).view(s, self.in_dim, self.out_dim)
        return weight, self.bias_gen(z)


class M2M(nn.Module):
    def __init__(self, in_dim: int, n_slots: int, n_scenarios: int = 2, out_dim: int = 32,
                 n_experts: int = 4, expert_dim: int = 64, z_dim: int = 16, attention_dim: int = 16,
                 tower_layers: int = 2):
        super().__init__()
        self.out_dim = out_dim
        self.n_slots = n_slots
        self.n_experts = n_experts
        self.expert_dim = expert_dim
        self.experts = nn.Linear(in_dim, n_experts * expert_dim)
        self.slot_emb = nn.Embedding(n_slots, z_dim)
        self.scenario_rep = nn.Sequential(nn.Linear(z_dim, z_dim), nn.ReLU())
        self.attention_unit = MetaUnit(z_dim, expert_dim, attention_dim)
        self.attention_vector = nn.Linear(z_dim, attention_dim)
        self.project = nn.Linear(expert_dim, out_dim)
        self.tower = nn.ModuleList([MetaUnit(z_dim, out_dim, out_dim) for _ in range(tower_layers)])

    def forward(self, x: Tensor, scenario: Tensor) -> Tensor:
        b = x.size(0)
        experts = torch.relu(self.experts(x)).view(b, self.n_experts, self.expert_dim)   # [B, E, H]
        z = self.scenario_rep(self.slot_emb.weight)                                        # [S, z]
        att_w, att_b = self.attention_unit(z)                                              # [S, H, A], [S, A]
        keys = torch.tanh(torch.einsum("beh,sha->bsea", experts, att_w) + att_b.view(1, self.n_slots, 1, -1))
        scores = (keys * self.attention_vector(z).view(1, self.n_slots, 1, -1)).sum(-1)    # [B, S, E]
        mixed = torch.einsum("bse,beh->bsh", torch.softmax(scores, dim=-1), experts)        # [B, S, H]
        h = torch.relu(self.project(mixed))                                                # [B, S, out]
        for unit in self.tower:
            w, bias = unit(z)
            h = h + torch.relu(torch.einsum("bsd,sde->bse", h, w) + bias.unsqueeze(0))     # residual meta layer
        return h
