"""Offline metrics: AUC, user-grouped GAUC and logloss per scenario and task, the oracle
AUC (scoring with the simulator's true probabilities) and RelaImpr.

Tasks: ``search_ctr``, ``search_ctcvr``, ``rec_ctr``, ``rec_ctcvr``; metric keys are
``<task>_auc``, ``<task>_gauc``, ``<task>_logloss`` and ``oracle_<task>_auc``.

AUC, GAUC and logloss are the project's shared implementations in ``usr.data.metrics``.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import torch

from model.data import Batch
from usr.data.metrics import auc, gauc, logloss

TASKS = ("search_ctr", "search_ctcvr", "rec_ctr", "rec_ctcvr")
SCENARIO_OF_TASK = {"search_ctr": 0, "search_ctcvr": 0, "rec_ctr": 1, "rec_ctcvr": 1}


def rela_impr(auc_model: float, auc_base: float) -> float:
    """RelaImpr = (AUC_model - 0.5) / (AUC_base - 0.5) - 1."""
    return (auc_model - 0.5) / (auc_base - 0.5) - 1.0


@torch.no_grad()
def predict(model: torch.nn.Module, batches: Iterable[Batch]) -> dict[str, np.ndarray]:
    """Scores and labels for every row of ``batches`` (model in eval mode)."""
    was_training = model.training
    model.eval()
    cols: dict[str, list[np.ndarray]] = {k: [] for k in
                                          ("scenario", "ctr", "ctcvr", "click", "ctcvr_label", "user_id", "p_click", "p_ctcvr")}
    try:
        for inputs, labels in batches:
            out = model(**inputs)
            cols["scenario"].append(inputs["scenario"].numpy())
            cols["ctr"].append(out["ctr"].float().numpy())
            cols["ctcvr"].append(out["ctcvr"].float().numpy())
            cols["click"].append(labels["click"].numpy())
            cols["ctcvr_label"].append(labels["ctcvr"].numpy())
            cols["user_id"].append(labels["user_id"].numpy())
            cols["p_click"].append(labels["p_click"].numpy())
            cols["p_ctcvr"].append(labels["p_ctcvr"].numpy())
    finally:
        model.train(was_training)
    return {k: (np.concatenate(v) if v else np.array([])) for k, v in cols.items()}


def metrics_from_predictions(pred: dict[str, np.ndarray], *, with_gauc: bool = True) -> dict[str, float]:
    out: dict[str, float] = {}
    for task in TASKS:
        in_scenario = pred["scenario"] == SCENARIO_OF_TASK[task]
        is_ctr = task.endswith("_ctr")
        y = (pred["click"] if is_ctr else pred["ctcvr_label"])[in_scenario]
        p = (pred["ctr"] if is_ctr else pred["ctcvr"])[in_scenario]
        out[f"{task}_auc"] = auc(y, p)
        out[f"{task}_logloss"] = logloss(y, p) if len(y) else float("nan")
        if with_gauc:
            out[f"{task}_gauc"] = gauc(y, p, pred["user_id"][in_scenario])
        out[f"{task}_n"] = float(in_scenario.sum())
        out[f"{task}_pos"] = float(y.sum())
    aucs = [out[f"{t}_auc"] for t in TASKS if not math.isnan(out[f"{t}_auc"])]
    out["mean_auc"] = float(np.mean(aucs)) if aucs else float("nan")
    return out


def oracle_metrics(pred: dict[str, np.ndarray]) -> dict[str, float]:
    """AUC of the true probabilities (the ceiling); empty when the data has none (NaN)."""
    if len(pred["p_click"]) == 0 or np.isnan(pred["p_click"]).all():
        return {}
    out: dict[str, float] = {}
    for task in TASKS:
        in_scenario = pred["scenario"] == SCENARIO_OF_TASK[task]
        is_ctr = task.endswith("_ctr")
        y = (pred["click"] if is_ctr else pred["ctcvr_label"])[in_scenario]
        p = (pred["p_click"] if is_ctr else pred["p_ctcvr"])[in_scenario]
        out[f"oracle_{task}_auc"] = auc(y, p)
        out[f"oracle_{task}_gauc"] = gauc(y, p, pred["user_id"][in_scenario])
    return out
