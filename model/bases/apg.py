"""APG: MLP layers whose weights are W = U S(z) V, with U [in, r] and V [r, out] shared and
the core S(z) [r, r] generated per slot from the scenario-group condition z (a learned
slot embedding) by a hyper-network (identity at start)."""
from __future__ import annotations

from typing import List

import torch
from torch import Tensor, nn


class APGLinear(nn.Module):
    def __init__(self, n_slots: int, in_dim: int, out_dim: int, rank: int, z_dim: int):
        super().__init__()
        self.rank = rank
        self.n_slots = n_slots
        self.u = nn.Linear(in_dim, rank, bias=False)
        self.v = nn.Linear(rank, out_dim)
        self.hyper = nn.Sequential(nn.Linear(z_dim, z_dim), nn.ReLU(), nn.Linear(z_dim, rank * rank))
        nn.init.zeros_(self.hyper[2].weight)
        nn.init.zeros_(self.hyper[2].bias)

    def forward(self, h: Tensor, z: Tensor) -> Tensor:
        """h [B, in] (shared by the slots) or [B, S, in]; z [S, z_dim] -> [B, S, out]."""
        core = self.hyper(z).view(self.n_slots, self.rank, self.rank) + torch.eye(self.rank, dtype=z.dtype, device=z.device)
        low = self.u(h)
        if low.dim() == 2:
            mixed = torch.einsum("br,srq->bsq", low, core)
        else:
            mixed = torch.einsum("bsr,srq->bsq", low, core)
        return self.v(mixed)


class APG(nn.Module):
    def __init__(self, in_dim: int, n_slots: int, n_scenarios: int = 2, out_dim: int = 32,
                 hidden: List[int] = [128, 64], rank: int = 16, z_dim: int = 16):
        super().__init__()
        self.out_dim = out_dim
        self.slot_emb = nn.Embedding(n_slots, z_dim)
        dims = [in_dim] + list(hidden) + [out_dim]
        self.layers = nn.ModuleList([APGLinear(n_slots, dims[i], dims[i + 1], rank, z_dim) for i in range(len(dims) - 1)])

    def forward(self, x: Tensor, scenario: Tensor) -> Tensor:
        z = self.slot_emb.weight
        h = x
        for layer in self.layers:
            h = torch.relu(layer(h, z))
        return h
