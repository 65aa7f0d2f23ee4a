"""STAR: star-topology FCN with partitioned normalisation and an auxiliary network.

- Partitioned normalisation (PN): batch statistics per scenario while training, per-scenario
  moving averages at inference; scale gamma * gamma_p and shift beta + beta_p. The variance
  has a floor (``var_floor``): inputs that are constant within a scenario (the scenario
  embedding, NO_QUERY for rec) have zero batch variance, and with a plain eps the small lag
  of the moving mean behind the learned value would be amplified ~300x at inference.
- Star FCN: every slot p uses W_p * W (element-wise) and b_p + b, W/b shared; W_p starts at 1.
- Auxiliary network on the scenario id: its output is added to every slot representation
  (the heads are linear, so this adds a scenario-dependent logit as in STAR).
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PartitionedNorm(nn.Module):
    def __init__(self, dim: int, n_scenarios: int, momentum: float = 0.1, eps: float = 1e-5, var_floor: float = 1e-2):
        super().__init__()
        self.n_scenarios = n_scenarios
        self.momentum = momentum
        self.eps = eps
        self.var_floor = var_floor
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.gamma_p = nn.Parameter(torch.ones(n_scenarios, dim))
        self.beta_p = nn.Parameter(torch.zeros(n_scenarios, dim))
        self.register_buffer("running_mean", torch.zeros(n_scenarios, dim))
        self.register_buffer("running_var", torch.ones(n_scenarios, dim))

    def forward(self, x: Tensor, scenario: Tensor) -> Tensor:
        if self.training:
            onehot = F.one_hot(scenario, self.n_scenarios).to(x.dtype)          # [B, n]
            counts = onehot.sum(0).unsqueeze(1)                                  # [n, 1]
            mean = onehot.t() @ x / counts.clamp(min=1.0)
            var = (onehot.t() @ (x * x) / counts.clamp(min=1.0) - mean * mean).clamp(min=0.0)
            present = counts > 1
            mean_used = torch.where(present, mean, self.running_mean.clone())
            var_used = torch.where(present, var, self.running_var.clone())
            with torch.no_grad():
                m = self.momentum
                self.running_mean.copy_(torch.where(present, (1 - m) * self.running_mean + m * mean.detach(), self.running_mean))
                self.running_var.copy_(torch.where(present, (1 - m) * self.running_var + m * var.detach(), self.running_var))
        else:
            mean_used = self.running_mean
            var_used = self.running_var
        normed = (x - mean_used[scenario]) * torch.rsqrt(var_used[scenario].clamp(min=self.var_floor) + self.eps)
        return normed * (self.gamma * self.gamma_p[scenario]) + self.beta + self.beta_p[scenario]


class StarLinear(nn.Module):
    """Per-slot weights W_p * W and biases b_p + b; input [B, D] (shared) or [B, S, D]."""

    def __init__(self, n_slots: int, in_dim: int, out_dim: int):
        super().__init__()
        self.shared_weight = nn.Parameter(torch.empty(in_dim, out_dim))
        self.shared_bias = nn.Parameter(torch.zeros(out_dim))
        self.slot_weight = nn.Parameter(torch.ones(n_slots, in_dim, out_dim))
        self.slot_bias = nn.Parameter(torch.zeros(n_slots, out_dim))
        nn.init.xavier_uniform_(self.shared_weight)

    def forward(self, x: Tensor) -> Tensor:
        weight = self.slot_weight * self.shared_weight.unsqueeze(0)
        bias = self.slot_bias + self.shared_bias.unsqueeze(0)
        if x.dim() == 2:
            return torch.einsum("bd,sde->bse", x, weight) + bias
        return torch.einsum("bsd,sde->bse", x, weight) + bias


class STAR(nn.Module):
    def __init__(self, in_dim: int, n_slots: int, n_scenarios: int = 2, out_dim: int = 32,
                 hidden: List[int] = [128, 64], aux_dim: int = 8):
        super().__init__()
        self.out_dim = out_dim
        self.norm = PartitionedNorm(in_dim, n_scenarios)
        dims = [in_dim] + list(hidden) + [out_dim]
        self.layers = nn.ModuleList([StarLinear(n_slots, dims[i], dims[i + 1]) for i in range(len(dims) - 1)])
        self.aux_emb = nn.Embedding(n_scenarios, aux_dim)
        self.aux = nn.Sequential(nn.Linear(aux_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim))

    def forward(self, x: Tensor, scenario: Tensor) -> Tensor:
        h = self.norm(x, scenario)
        for layer in self.layers:
            h = torch.relu(layer(h))
        return h + self.aux(self.aux_emb(scenario)).unsqueeze(1)
