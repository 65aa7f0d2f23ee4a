"""The training loss of USR_MODEL.md.

Loss = BCE(y, p_ctr) + BCE(y*z, p_ctcvr)
       + lambda_g * [BCE(y_g, p_gctr) + BCE(y_g*z_g, p_gctcvr)]   (when GLMT is on)
       + lambda_cl * L_cl                                          (when CL is on)
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor

from model.configs import ModelConfig

EPS = 1e-7


def bce(prob: Tensor, target: Tensor) -> Tensor:
    return F.binary_cross_entropy(prob.clamp(EPS, 1.0 - EPS), target)


def ranking_loss(outputs: Dict[str, Tensor], labels: Dict[str, Tensor], config: ModelConfig) -> tuple[Tensor, dict[str, float]]:
    parts: dict[str, Tensor] = {
        "ctr": bce(outputs["ctr"], labels["click"]),
        "ctcvr": bce(outputs["ctcvr"], labels["ctcvr"]),
    }
    total = parts["ctr"] + parts["ctcvr"]
    if "gctr" in outputs:
        parts["gctr"] = bce(outputs["gctr"], labels["global_click"])
        parts["gctcvr"] = bce(outputs["gctcvr"], labels["global_ctcvr"])
        total = total + config.global_weight * (parts["gctr"] + parts["gctcvr"])
    if "cl_loss" in outputs:
        parts["cl"] = outputs["cl_loss"]
        total = total + config.cl_weight * parts["cl"]
    return total, {k: float(v.detach()) for k, v in parts.items()}
