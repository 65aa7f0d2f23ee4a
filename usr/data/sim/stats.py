"""Key statistics of a simulated log (written as ``stats.json``)."""
from __future__ import annotations

from typing import Any

import numpy as np

from usr.data.metrics import auc


def _rate(num: np.ndarray, den: np.ndarray | None = None) -> float:
    if den is None:
        return float(num.mean()) if num.size else float("nan")
    d = float(den.sum())
    return float(num.sum()) / d if d else float("nan")


def compute_stats(arrays: dict[str, np.ndarray], n_pairs: int, n_pairs_both: int, max_position: int = 20) -> dict[str, Any]:
    """Statistics from per-impression arrays (concatenated over all days):
    is_search, click, order, global_click, global_order, other_click, cross_pair,
    p_click, p_ctcvr, position, hist_len."""
    a = arrays
    n = int(a["click"].size)
    out: dict[str, Any] = {"impressions": n}
    scen: dict[str, Any] = {}
    oracle: dict[str, float] = {}
    for name, mask in (("search", a["is_search"]), ("rec", ~a["is_search"])):
        click, order = a["click"][mask], a["order"][mask]
        ctcvr = click & order
        pos = a["position"][mask]
        ctr_by_pos = [_rate(click[pos == p]) for p in range(max_position) if (pos == p).any()]
        scen[name] = {
            "impressions": int(mask.sum()),
            "ctr": _rate(click),
            "cvr": _rate(order, click),               # orders per click
            "ctcvr": _rate(ctcvr),
            "global_ctr": _rate(a["global_click"][mask]),
            "global_only_click_share": _rate(a["global_click"][mask] & ~click),
            "mean_p_click": float(a["p_click"][mask].mean()) if mask.any() else float("nan"),
            "ctr_by_position": ctr_by_pos,
        }
        oracle[f"{name}_ctr"] = auc(click, a["p_click"][mask])
        oracle[f"{name}_ctcvr"] = auc(ctcvr, a["p_ctcvr"][mask])
    out["scenarios"] = scen
    g_only = a["global_click"] & ~a["click"]
    out["global_only_click_share"] = _rate(g_only)
    out["global_only_order_share"] = _rate(a["global_order"] & ~a["order"])
    out["global_only_share_of_global_clicks"] = _rate(g_only, a["global_click"])
    out["global_only_from_other_scenario_share"] = _rate(g_only & a["other_click"], g_only)
    out["cross_scenario_pair_share"] = n_pairs_both / n_pairs if n_pairs else float("nan")
    out["cross_scenario_impression_share"] = _rate(a["cross_pair"])
    out["order_implies_click"] = bool(not (a["order"] & ~a["click"]).any())
    out["mean_history_len"] = float(a["hist_len"].mean()) if n else float("nan")
    out["oracle_auc"] = oracle
    return out
