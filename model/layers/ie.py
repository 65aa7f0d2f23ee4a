"""IE: the S&R Views User Interest Extractor.

Target attention like DIN, but the attention MLP's hidden layer is re-parameterised per
view (APG style): W_v = U S(c_v) V with U and V shared and the small core S(c_v) (rank r)
produced by a hyper-network from the condition c_v. The condition is the view embedding
e_v, v in {S, R} (choice ``condition_user``: also the stop-gradient user embedding, which
makes S per sample). U acts on [k ; t ; k - t ; k * t], computed as k U_k + t U_t + (k*t) U_p.
The S view's target is [item ; query]; the R view's is [item ; NO_QUERY] (the caller
passes both). Output: one interest vector per view, h_S and h_R, for every sample.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

from model.layers.mlp import masked_softmax


class InterestExtractor(nn.Module):
    def __init__(self, key_dim: int, target_dim: int, view_dim: int = 8, user_dim: int = 0,
                 rank: int = 8, hidden: int = 32, hyper_hidden: int = 32, condition_user: bool = False):
        super().__init__()
        self.out_dim = key_dim
        self.rank = rank
        self.condition_user = condition_user
        self.view_emb = nn.Embedding(2, view_dim)
        self.target_proj = nn.Linear(target_dim, key_dim)
        # U (shared): the three blocks of the first attention layer, into rank r
        self.u_key = nn.Linear(key_dim, rank)
        self.u_target = nn.Linear(key_dim, rank, bias=False)
        self.u_product = nn.Linear(key_dim, rank, bias=False)
        # V (shared): rank r -> hidden
        self.v = nn.Linear(rank, hidden)
        cond_dim = view_dim + (user_dim if condition_user else 0)
        self.hyper = nn.Sequential(nn.Linear(cond_dim, hyper_hidden), nn.ReLU(), nn.Linear(hyper_hidden, rank * rank))
        nn.init.zeros_(self.hyper[2].weight)  # S(c) starts at the identity
        nn.init.zeros_(self.hyper[2].bias)
        self.score = nn.Linear(hidden, 1)

    def core(self, view: int, user: Tensor) -> Tensor:
        """S(c_v): [B, r, r] (identity + hyper-network output)."""
        b = user.size(0)
        cond = self.view_emb.weight[view].unsqueeze(0).expand(b, -1)
        if self.condition_user:
            cond = torch.cat([cond, user.detach()], dim=1)
        s = self.hyper(cond).view(b, self.rank, self.rank)
        return s + torch.eye(self.rank, dtype=s.dtype, device=s.device).unsqueeze(0)

    def view_interest(self, keys: Tensor, mask: Tensor, key_part: Tensor, target: Tensor, core: Tensor) -> Tuple[Tensor, Tensor]:
        t = self.target_proj(target)
        z = key_part + self.u_target(t).unsqueeze(1) + self.u_product(keys * t.unsqueeze(1))  # [B, L, r]
        hidden = torch.relu(self.v(torch.bmm(z, core)))                                       # [B, L, H]
        weights = masked_softmax(self.score(hidden).squeeze(-1), mask)
        return torch.bmm(weights.unsqueeze(1), keys).squeeze(1), weights

    def forward(self, keys: Tensor, mask: Tensor, target_search: Tensor, target_rec: Tensor,
                user: Tensor) -> Tuple[Tensor, Tensor]:
        """keys [B, L, D], mask [B, L], targets [B, T], user [B, Du] -> (h_S, h_R), each [B, D]."""
        key_part = self.u_key(keys)  # shared by both views
        h_search, _ = self.view_interest(keys, mask, key_part, target_search, self.core(0, user))
        h_rec, _ = self.view_interest(keys, mask, key_part, target_rec, self.core(1, user))
        return h_search, h_rec
