"""Contrastive loss between the S and R views: symmetric in-batch InfoNCE on normalised
projections. Positives: the two views of the same sample (choice ``positive="same_user"``:
also the other view of every sample of the same user). Negatives: the other samples in
the batch; pairs of different samples of the same user are masked out of the negatives
(choice ``mask_same_user``). Temperature tau (default 0.1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def info_nce(view_a: Tensor, view_b: Tensor, user_ids: Tensor, tau: float = 0.1,
             mask_same_user: bool = True, same_user_positive: bool = False) -> Tensor:
    """Symmetric InfoNCE between rows of ``view_a`` and ``view_b`` ([B, D] each)."""
    a = F.normalize(view_a, dim=1)
    b = F.normalize(view_b, dim=1)
    logits = a @ b.t() / tau                                          # [B, B]
    n = logits.size(0)
    eye = torch.eye(n, dtype=torch.bool, device=logits.device)
    same_user = user_ids.unsqueeze(0) == user_ids.unsqueeze(1)
    if not same_user_positive:
        if mask_same_user:
            logits = logits.masked_fill(same_user & ~eye, -1e9)
        target = torch.arange(n, device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    # several positives per row: -log( sum_pos exp / sum_all exp ), averaged over rows
    positive = same_user | eye
    loss_ab = torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~positive, -1e9), 1)
    loss_ba = torch.logsumexp(logits.t(), 1) - torch.logsumexp(logits.t().masked_fill(~positive.t(), -1e9), 1)
    return 0.5 * (loss_ab.mean() + loss_ba.mean())


class ViewContrast(nn.Module):
    """Projection heads for one pair of views, then :func:`info_nce`."""

    def __init__(self, in_dim: int, proj_dim: int = 32, tau: float = 0.1,
                 mask_same_user: bool = True, same_user_positive: bool = False):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(in_dim, proj_dim), nn.ReLU(), nn.Linear(proj_dim, proj_dim))
        self.tau = tau
        self.mask_same_user = mask_same_user
        self.same_user_positive = same_user_positive

    def forward(self, view_search: Tensor, view_rec: Tensor, user_ids: Tensor) -> Tensor:
        return info_nce(self.proj(view_search), self.proj(view_rec), user_ids, self.tau,
                        self.mask_same_user, self.same_user_positive)
