"""Static DIN target attention over the behaviour sequence (the baselines' interest layer).

score(k, t) = MLP([k ; t ; k - t ; k * t]) for every behaviour k and the target t
(the target, [item ; query], is first projected to the key width). The first MLP layer
on the concatenation is computed as k A + t B + (k * t) C, which is the same linear map
with the k - t block folded into A and B, at half the cost. Weights are a masked softmax
over the sequence; the interest is the weighted sum of the behaviour embeddings.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from model.layers.mlp import masked_softmax


class DINAttention(nn.Module):
    def __init__(self, key_dim: int, target_dim: int, hidden: int = 32):
        super().__init__()
        self.out_dim = key_dim
        self.target_proj = nn.Linear(target_dim, key_dim)
        self.key_part = nn.Linear(key_dim, hidden)
        self.target_part = nn.Linear(key_dim, hidden, bias=False)
        self.product_part = nn.Linear(key_dim, hidden, bias=False)
        self.score = nn.Linear(hidden, 1)

    def attention_weights(self, keys: Tensor, mask: Tensor, target: Tensor) -> Tensor:
        t = self.target_proj(target)                                   # [B, D]
        hidden = self.key_part(keys) + self.target_part(t).unsqueeze(1) + self.product_part(keys * t.unsqueeze(1))
        scores = self.score(torch.relu(hidden)).squeeze(-1)            # [B, L]
        return masked_softmax(scores, mask)

    def forward(self, keys: Tensor, mask: Tensor, target: Tensor) -> Tensor:
        """keys [B, L, D], mask [B, L], target [B, T] -> interest [B, D]."""
        weights = self.attention_weights(keys, mask, target)
        return torch.bmm(weights.unsqueeze(1), keys).squeeze(1)
