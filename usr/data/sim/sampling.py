"""Vectorised sampling helpers: deterministic hash noise, weighted sampling within
segments (items of an aisle, of an aisle x brand), and row-wise categorical draws."""
from __future__ import annotations

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 arrays (a fast, well-mixed integer hash)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def hash_uniform(a: np.ndarray, b: np.ndarray, salt: int) -> np.ndarray:
    """A uniform (0, 1) number fixed for each pair (a, b) and salt."""
    with np.errstate(over="ignore"):
        x = splitmix64(np.asarray(a, dtype=np.uint64) * np.uint64(0x100000001B3) ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF))
        x = splitmix64(x ^ np.asarray(b, dtype=np.uint64))
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def hash_normal(a: np.ndarray, b: np.ndarray, salt: int) -> np.ndarray:
    """A standard normal number fixed for each pair (a, b) and salt (Box-Muller)."""
    u1 = hash_uniform(a, b, salt)
    u2 = hash_uniform(a, b, salt + 0x5DEECE66D)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


class SegmentSampler:
    """Draws items in proportion to a weight, restricted to a segment key per draw.

    ``keys[i]`` is the segment of item ``i`` (items are numbered 1..n; index 0 unused).
    After :meth:`set_weights`, :meth:`sample` returns for each requested key an item of
    that segment with probability proportional to its weight, or 0 if the segment is empty.
    """

    def __init__(self, keys: np.ndarray, n_keys: int):
        item_ids = np.arange(1, keys.size, dtype=np.int64)
        k = keys[1:]
        order = np.argsort(k, kind="stable")
        self.items = item_ids[order]
        sorted_keys = k[order]
        self.start = np.searchsorted(sorted_keys, np.arange(n_keys), side="left")
        self.end = np.searchsorted(sorted_keys, np.arange(n_keys), side="right")
        self.cum = np.zeros(self.items.size + 1)

    def set_weights(self, weights: np.ndarray) -> None:
        """``weights[i]`` for item id ``i`` (>= 0)."""
        self.cum = np.r_[0.0, np.cumsum(weights[self.items], dtype=np.float64)]

    def sample(self, keys: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One item per key, ``u`` uniform (0, 1) of the same length."""
        keys = np.asarray(keys, dtype=np.int64)
        s, e = self.start[keys], self.end[keys]
        lo, hi = self.cum[s], self.cum[e]
        target = lo + u * (hi - lo)
        idx = np.searchsorted(self.cum, target, side="right") - 1
        idx = np.clip(idx, s, np.maximum(e - 1, s))
        out = self.items[np.minimum(idx, self.items.size - 1)]
        return np.where(e > s, out, 0)

    def segment_size(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.int64)
        return self.end[keys] - self.start[keys]


def sample_rows(logits: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Column index drawn from softmax(logits[row]) for each (row, u) pair.

    ``logits`` is (n_rows, K); ``rows`` and ``u`` have one entry per draw. Uses one
    cumulative table for all rows, so many draws from many rows cost one searchsorted.
    """
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    cum = np.cumsum(p, axis=1)
    cum /= cum[:, -1:]
    n_rows, k = cum.shape
    flat = (cum + np.arange(n_rows)[:, None]).ravel()
    target = np.asarray(rows, dtype=np.float64) + np.minimum(u, 1 - 1e-12)
    idx = np.searchsorted(flat, target, side="right")
    col = idx - np.asarray(rows, dtype=np.int64) * k
    return np.clip(col, 0, k - 1)


def gumbel_top_k(logits: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k distinct column indices per row, drawn without replacement from softmax(logits)."""
    g = logits - np.log(-np.log(rng.random(logits.shape)))
    return np.argpartition(-g, k - 1, axis=1)[:, :k]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
