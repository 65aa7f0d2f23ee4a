"""Ranking metrics on numpy arrays: AUC (rank based, ties averaged), user-grouped
GAUC and log loss. Shared by the simulator's statistics and the model trainer."""
from __future__ import annotations

import numpy as np


def _tie_averaged_ranks(sorted_scores: np.ndarray) -> np.ndarray:
    """1-based ranks of an ascending-sorted score array, tied values get their mean rank."""
    n = sorted_scores.size
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], n]                      # exclusive
    mean_rank = (starts + ends + 1) / 2.0            # mean of ranks starts+1 .. ends
    return np.repeat(mean_rank, ends - starts)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a random positive > random negative),
    ties counted one half. Labels are 0/1 (anything > 0 counts as positive).
    Returns NaN when only one class is present."""
    y = np.asarray(labels).ravel() > 0
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = _tie_averaged_ranks(s[order])
    rank_sum_pos = float(ranks[y[order]].sum())
    return (rank_sum_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Group AUC: the AUC within each group (e.g. user), averaged with weights equal to
    the group's number of rows, over groups that have both classes. NaN if none has."""
    y = (np.asarray(labels).ravel() > 0).astype(np.int64)
    s = np.asarray(scores, dtype=np.float64).ravel()
    g = np.asarray(groups).ravel()
    if not (y.size == s.size == g.size):
        raise ValueError("labels, scores and groups must have the same length")
    if y.size == 0:
        return float("nan")
    order = np.lexsort((s, g))
    g_s, s_s, y_s = g[order], s[order], y[order]
    n = y.size
    grp_start_mask = np.r_[True, g_s[1:] != g_s[:-1]]
    grp_starts = np.flatnonzero(grp_start_mask)
    grp_id = np.cumsum(grp_start_mask) - 1
    # tie blocks: same group and same score
    blk_start_mask = grp_start_mask | np.r_[True, s_s[1:] != s_s[:-1]]
    blk_starts = np.flatnonzero(blk_start_mask)
    blk_ends = np.r_[blk_starts[1:], n]
    pos_in_grp_start = blk_starts - grp_starts[grp_id[blk_starts]]
    pos_in_grp_end = blk_ends - grp_starts[grp_id[blk_starts]]
    blk_rank = (pos_in_grp_start + pos_in_grp_end + 1) / 2.0
    ranks = np.repeat(blk_rank, blk_ends - blk_starts)
    n_groups = grp_starts.size
    n_pos = np.bincount(grp_id, weights=y_s, minlength=n_groups)
    n_all = np.bincount(grp_id, minlength=n_groups).astype(np.float64)
    n_neg = n_all - n_pos
    rank_sum = np.bincount(grp_id, weights=ranks * y_s, minlength=n_groups)
    ok = (n_pos > 0) & (n_neg > 0)
    if not ok.any():
        return float("nan")
    aucs = (rank_sum[ok] - n_pos[ok] * (n_pos[ok] + 1) / 2.0) / (n_pos[ok] * n_neg[ok])
    return float(np.average(aucs, weights=n_all[ok]))


def logloss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities against 0/1 labels."""
    y = (np.asarray(labels).ravel() > 0).astype(np.float64)
    p = np.clip(np.asarray(probs, dtype=np.float64).ravel(), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
