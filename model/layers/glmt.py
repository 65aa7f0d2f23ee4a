"""Output heads: plain ESMM heads (baselines) and GLMT, the Global Label Space Multi-Task layer.

Both take the base model's slot representations ``reps [B, n_slots, D]`` and the sample's
scenario (0 = search, 1 = rec) and return probabilities of shape ``[B]``.

ESMM: on r_s (the sample's scenario slot): p_ctr = sigmoid(a), p_cvr = sigmoid(b),
p_ctcvr = p_ctr * p_cvr.

GLMT: slot 2 is the global slot G.
  global (auxiliary), on r_G: p_gctr, p_gcvr, p_gctcvr = p_gctr * p_gcvr
  main, on r_s: p_ctr = p_gctr * q_ctr (q_ctr = P(click here | global click)),
                p_ctcvr = p_ctr * p_cvr
  choice ``tie_ctcvr_to_global``: p_ctcvr = min(p_gctcvr * q_ctcvr, p_ctr) where
  q_ctcvr = P(order here | global order).
So p_ctcvr <= p_ctr <= p_gctr holds in both forms.
"""
from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor, nn

from model.layers.mlp import SlotLinear


def pick_slot(values: Tensor, scenario: Tensor) -> Tensor:
    """values [B, S, K] -> [B, K] at slot ``scenario[b]``."""
    index = scenario.view(-1, 1, 1).expand(-1, 1, values.size(2))
    return values.gather(1, index).squeeze(1)


class ESMMHead(nn.Module):
    def __init__(self, in_dim: int, n_slots: int = 2):
        super().__init__()
        self.logits = SlotLinear(n_slots, in_dim, 2)  # (ctr, cvr) per scenario slot

    def forward(self, reps: Tensor, scenario: Tensor) -> Dict[str, Tensor]:
        logits = pick_slot(self.logits(reps), scenario)
        p_ctr = torch.sigmoid(logits[:, 0])
        p_cvr = torch.sigmoid(logits[:, 1])
        return {"ctr": p_ctr, "ctcvr": p_ctr * p_cvr}


class GLMTHead(nn.Module):
    def __init__(self, in_dim: int, tie_ctcvr_to_global: bool = False):
        super().__init__()
        self.tie_ctcvr_to_global = tie_ctcvr_to_global
        self.main = SlotLinear(2, in_dim, 3)      # (q_ctr, cvr, q_ctcvr) on the S and R slots
        self.global_head = nn.Linear(in_dim, 2)   # (gctr, gcvr) on the G slot
        nn.init.constant_(self.main.bias[:, 0], 2.0)  # q_ctr starts near 0.88: clicks here ~ global clicks

    def forward(self, reps: Tensor, scenario: Tensor) -> Dict[str, Tensor]:
        global_logits = self.global_head(reps[:, 2])
        p_gctr = torch.sigmoid(global_logits[:, 0])
        p_gctcvr = p_gctr * torch.sigmoid(global_logits[:, 1])
        main_logits = pick_slot(self.main(reps[:, :2]), scenario)
        p_ctr = p_gctr * torch.sigmoid(main_logits[:, 0])
        if self.tie_ctcvr_to_global:
            p_ctcvr = torch.minimum(p_gctcvr * torch.sigmoid(main_logits[:, 2]), p_ctr)
        else:
            p_ctcvr = p_ctr * torch.sigmoid(main_logits[:, 1])
        return {"ctr": p_ctr, "ctcvr": p_ctcvr, "gctr": p_gctr, "gctcvr": p_gctcvr}
