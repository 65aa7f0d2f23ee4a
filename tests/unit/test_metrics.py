"""AUC / GAUC / log loss against brute-force definitions."""
from __future__ import annotations

import math

import numpy as np

from usr.data.metrics import auc, gauc, logloss


def _brute_auc(y, s):
    pos = [a for a, l in zip(s, y) if l]
    neg = [a for a, l in zip(s, y) if not l]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(5, 60))
        y = rng.integers(0, 2, n)
        s = rng.integers(0, 5, n).astype(float)   # many ties
        if y.min() == y.max():
            continue
        assert math.isclose(auc(y, s), _brute_auc(y, s), rel_tol=1e-12)


def test_auc_extremes_and_single_class():
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert auc([0, 1], [0.5, 0.5]) == 0.5
    assert math.isnan(auc([1, 1, 1], [0.1, 0.2, 0.3]))


def test_gauc_is_weighted_mean_of_group_aucs():
    rng = np.random.default_rng(1)
    g = rng.integers(0, 6, 300)
    y = rng.integers(0, 2, 300)
    s = rng.integers(0, 4, 300).astype(float)
    expected_num = expected_den = 0.0
    for k in np.unique(g):
        m = g == k
        if y[m].min() != y[m].max():
            expected_num += m.sum() * _brute_auc(y[m], s[m])
            expected_den += m.sum()
    assert math.isclose(gauc(y, s, g), expected_num / expected_den, rel_tol=1e-12)
    assert math.isnan(gauc([1, 0], [0.2, 0.1], [1, 2]))


def test_logloss():
    assert math.isclose(logloss([1, 0], [0.5, 0.5]), math.log(2))
    assert logloss([1, 0], [0.99, 0.01]) < 0.02
