"""FG: the S&R Views Feature Generator.

Scales the scenario-agnostic embeddings E (user, item, context fields, flattened) per view:
g_v = 2 * sigmoid(MLP([e_v ; stopgrad(E)])), E_v = g_v * E, element-wise (choice
``per_field``: one gate per field, broadcast over the field's embedding). The gate MLP's
first layer is split into an E part (computed once) and a view part.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn


class FeatureGenerator(nn.Module):
    def __init__(self, n_fields: int, dim: int, view_dim: int = 8, hidden: int = 64, per_field: bool = False):
        super().__init__()
        self.n_fields = n_fields
        self.dim = dim
        self.per_field = per_field
        self.view_emb = nn.Embedding(2, view_dim)
        self.from_features = nn.Linear(n_fields * dim, hidden)
        self.from_view = nn.Linear(view_dim, hidden, bias=False)
        self.gate_out = nn.Linear(hidden, n_fields if per_field else n_fields * dim)
        nn.init.zeros_(self.gate_out.weight)  # gates start at 1 (2 * sigmoid(0))
        nn.init.zeros_(self.gate_out.bias)

    def gate(self, feature_part: Tensor, view: int) -> Tensor:
        hidden = torch.relu(feature_part + self.from_view(self.view_emb.weight[view]).unsqueeze(0))
        g = 2.0 * torch.sigmoid(self.gate_out(hidden))
        if self.per_field:
            g = g.unsqueeze(-1).expand(-1, self.n_fields, self.dim).reshape(g.size(0), self.n_fields * self.dim)
        return g

    def forward(self, features: Tensor) -> Tuple[Tensor, Tensor]:
        """features E [B, F*d] -> (E_S, E_R), each [B, F*d]."""
        feature_part = self.from_features(features.detach())
        return features * self.gate(feature_part, 0), features * self.gate(feature_part, 1)
