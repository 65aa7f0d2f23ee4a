"""Per-user behaviour history as ring buffers, and point-in-time snapshots of it.

One entry per click; its action is upgraded to ORDER when that click led to an order
(both happen before any later session, so a later snapshot sees the final action).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from usr.data.tables import ACTION_ORDER


@dataclass
class Snapshot:
    """Histories of ``n`` users at one moment, newest first, each array (n, L).
    ``valid[r, k]`` is True where entry k exists (a prefix of each row)."""

    item: np.ndarray
    cate2: np.ndarray
    brand: np.ndarray
    source: np.ndarray
    action: np.ndarray
    count: np.ndarray   # (n,) number of valid entries

    @property
    def valid(self) -> np.ndarray:
        return np.arange(self.item.shape[1])[None, :] < self.count[:, None]

    def take(self, rows: np.ndarray) -> "Snapshot":
        return Snapshot(self.item[rows], self.cate2[rows], self.brand[rows], self.source[rows],
                        self.action[rows], self.count[rows])

    @staticmethod
    def concat(parts: list["Snapshot"]) -> "Snapshot":
        return Snapshot(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                          ("item", "cate2", "brand", "source", "action", "count")))

    def distinct_entry(self, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
        """For each (row, u): the column of a uniformly drawn *distinct* item of that row
        (its newest occurrence); -1 where the row is empty."""
        item = self.item[rows]
        n, width = item.shape
        valid = np.arange(width)[None, :] < self.count[rows, None]
        masked = np.where(valid, item, -1)
        order = np.argsort(masked, axis=1, kind="stable")       # by item, newest first within an item
        srt = np.take_along_axis(masked, order, axis=1)
        head = np.ones_like(srt, dtype=bool)
        head[:, 1:] = srt[:, 1:] != srt[:, :-1]
        head &= srt >= 0
        first = np.zeros_like(head)
        np.put_along_axis(first, order, head, axis=1)
        n_distinct = first.sum(axis=1)
        r = np.minimum((u * n_distinct).astype(np.int64), np.maximum(n_distinct - 1, 0))
        col = np.argmax(np.cumsum(first, axis=1) > r[:, None], axis=1)
        return np.where(n_distinct > 0, col, -1)

    def recent_aisle(self, rows: np.ndarray, cate2: np.ndarray, window: int, decay: float) -> np.ndarray:
        """Decayed count of ``cate2[j]`` among the newest ``window`` entries of row ``rows[j]``."""
        w = min(window, self.item.shape[1])
        weights = decay ** np.arange(w)
        hit = self.cate2[rows, :w] == cate2[:, None]
        hit &= np.arange(w)[None, :] < self.count[rows, None]
        return hit @ weights

    def contains(self, rows: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ordered_before, clicked_only_before) for item ``items[j]`` in row ``rows[j]``."""
        same = self.item[rows] == items[:, None]
        same &= np.arange(self.item.shape[1])[None, :] < self.count[rows, None]
        ordered = (same & (self.action[rows] == ACTION_ORDER)).any(axis=1)
        clicked = same.any(axis=1) & ~ordered
        return ordered, clicked


class History:
    """Ring buffers of the last ``length`` behaviours of every user (ids 0..n_users)."""

    def __init__(self, n_users: int, length: int):
        shape = (n_users + 1, length)
        self.length = length
        self.item = np.zeros(shape, dtype=np.int64)
        self.cate2 = np.zeros(shape, dtype=np.int64)
        self.brand = np.zeros(shape, dtype=np.int64)
        self.source = np.zeros(shape, dtype=np.int8)
        self.action = np.zeros(shape, dtype=np.int8)
        self.ptr = np.zeros(n_users + 1, dtype=np.int64)    # next slot to write
        self.count = np.zeros(n_users + 1, dtype=np.int64)  # valid entries (<= length)

    def snapshot(self, users: np.ndarray) -> Snapshot:
        users = np.asarray(users, dtype=np.int64)
        cols = (self.ptr[users, None] - 1 - np.arange(self.length)[None, :]) % self.length
        rows = users[:, None]
        return Snapshot(self.item[rows, cols], self.cate2[rows, cols], self.brand[rows, cols],
                        self.source[rows, cols], self.action[rows, cols], self.count[users].copy())

    def append(self, users: np.ndarray, item: np.ndarray, cate2: np.ndarray, brand: np.ndarray,
               source: np.ndarray, action: np.ndarray) -> None:
        """Append entries; for each user, entries must be given oldest first."""
        users = np.asarray(users, dtype=np.int64)
        if users.size == 0:
            return
        order = np.argsort(users, kind="stable")
        u = users[order]
        starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
        counts = np.diff(np.r_[starts, u.size])
        k = np.arange(u.size) - np.repeat(starts, counts)     # rank within user
        n_u = np.repeat(counts, counts)
        keep = k >= n_u - self.length                        # only the newest `length` fit
        o, uu, kk = order[keep], u[keep], k[keep]
        slot = (self.ptr[uu] + kk) % self.length
        self.item[uu, slot] = item[o]
        self.cate2[uu, slot] = cate2[o]
        self.brand[uu, slot] = brand[o]
        self.source[uu, slot] = source[o]
        self.action[uu, slot] = action[o]
        first = u[starts]
        self.ptr[first] = (self.ptr[first] + counts) % self.length
        self.count[first] = np.minimum(self.count[first] + counts, self.length)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {f"hist_{k}": getattr(self, k) for k in ("item", "cate2", "brand", "source", "action", "ptr", "count")}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "History":
        item = arrays["hist_item"]
        h = cls(item.shape[0] - 1, item.shape[1])
        for k in ("item", "cate2", "brand", "source", "action", "ptr", "count"):
            setattr(h, k, np.array(arrays[f"hist_{k}"]))
        return h
