"""Stage 2 of the stream jobs: item and query-item statistics.

Items are seen by every user partition, so stage 1 re-keys its accepted events by item
onto an internal topic (``<app_id>-item-events``, partition ``item_id % partitions``).
A message there holds the records of one stage-1 flush for one target partition:
``{"p": source partition, "r": [[kind, source offset, item_id, scen, query, ts], ...]}``.

Stage 1 emits, per (kind, source partition), the records of accepted events in source
offset order (orders in offset order once their validity is decided). After a crash it
re-emits from its checkpoint, so a record may arrive twice; stage 2 keeps the highest
source offset applied per channel (kind, source partition) and skips anything at or below
it, which makes every replay a no-op. The sums are order independent, so the statistics
are a function of the accepted events only.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from streams.state import KIND_CLICK, KIND_IMPRESSION, KIND_ORDER


@dataclass(frozen=True)
class Smoothing:
    """Beta priors of the smoothed rates: ctr = (clicks + w*ctr0) / (impressions + w),
    cvr = (orders + w*cvr0) / (clicks + w)."""

    ctr_prior: float = 0.05
    cvr_prior: float = 0.2
    weight: float = 20.0

    def ctr(self, impressions: int, clicks: int) -> float:
        return (clicks + self.weight * self.ctr_prior) / (impressions + self.weight)

    def cvr(self, clicks: int, orders: int) -> float:
        return (orders + self.weight * self.cvr_prior) / (clicks + self.weight)

    @classmethod
    def from_streams(cls, s: Any) -> "Smoothing":
        return cls(ctr_prior=s.ctr_prior, cvr_prior=s.cvr_prior, weight=s.prior_weight)


def encode_records(source_partition: int, records: list[tuple]) -> bytes:
    return json.dumps({"p": source_partition, "r": records}, separators=(",", ":")).encode()


class ItemStatsState:
    """The stage-2 state of one internal-topic partition."""

    def __init__(self, partition: int, smoothing: Smoothing) -> None:
        self.partition = partition
        self.smoothing = smoothing
        self.next_offset = 0
        self.channels: dict[str, int] = {}              # "kind:source partition" -> highest source offset applied
        self.items: dict[int, list[int]] = {}           # item -> [imp_s, clk_s, ord_s, imp_r, clk_r, ord_r, last_ts]
        self.query_items: dict[tuple[str, int], list[int]] = {}  # (query, item) -> [imp, clk, ord, last_ts]
        self.counts: Counter[str] = Counter()
        self.reset_outputs()

    def reset_outputs(self) -> None:
        """Forget the changes since the last flush (features written, checkpoint committed)."""
        self.dirty_items: set[int] = set()
        self.dirty_query_items: set[tuple[str, int]] = set()
        self.meta_dirty = False

    def apply(self, offset: int, raw: bytes) -> None:
        """Apply one internal message (ignored below the applied offset)."""
        if offset < self.next_offset:
            self.counts["replayed"] += 1
            return
        self.next_offset = offset + 1
        self.meta_dirty = True
        msg = json.loads(raw)
        src = msg["p"]
        channels = self.channels
        for kind, off, item, scen, query, ts in msg["r"]:
            ch = f"{kind}:{src}"
            if off <= channels.get(ch, -1):
                self.counts["duplicate_records"] += 1
                continue
            channels[ch] = off
            self.counts["records"] += 1
            slots = self.items.get(item)
            if slots is None:
                slots = self.items[item] = [0, 0, 0, 0, 0, 0, 0]
            slots[scen * 3 + kind] += 1
            if ts > slots[6]:
                slots[6] = ts
            self.dirty_items.add(item)
            if scen == 0 and query:
                key = (query, item)
                q = self.query_items.get(key)
                if q is None:
                    q = self.query_items[key] = [0, 0, 0, 0]
                q[kind] += 1
                if ts > q[3]:
                    q[3] = ts
                self.dirty_query_items.add(key)

    # ------------------------------------------------------------------ features
    def item_features(self, item_ids: list[int]) -> dict[str, list]:
        """Columns of item_stats and item_popularity."""
        sm = self.smoothing
        cols: dict[str, list] = {k: [] for k in ("item_id", "counts", "rates", "impressions", "clicks", "orders",
                                                  "ctr", "last_ts")}
        for item in item_ids:
            s = self.items[item]
            imp_a, clk_a, ord_a = s[0] + s[3], s[1] + s[4], s[2] + s[5]
            cols["item_id"].append(item)
            cols["counts"].append(s[:6] + [imp_a, clk_a, ord_a])
            cols["rates"].append([sm.ctr(s[0], s[1]), sm.cvr(s[1], s[2]), sm.ctr(s[3], s[4]), sm.cvr(s[4], s[5]),
                                  sm.ctr(imp_a, clk_a), sm.cvr(clk_a, ord_a)])
            cols["impressions"].append(imp_a)
            cols["clicks"].append(clk_a)
            cols["orders"].append(ord_a)
            cols["ctr"].append(sm.ctr(imp_a, clk_a))
            cols["last_ts"].append(s[6])
        return cols

    def query_item_features(self, keys: list[tuple[str, int]]) -> dict[str, list]:
        sm = self.smoothing
        cols: dict[str, list] = {k: [] for k in ("query", "item_id", "counts", "ctr", "last_ts")}
        for key in keys:
            q = self.query_items[key]
            cols["query"].append(key[0])
            cols["item_id"].append(key[1])
            cols["counts"].append(q[:3])
            cols["ctr"].append(sm.ctr(q[0], q[1]))
            cols["last_ts"].append(q[3])
        return cols

    # ------------------------------------------------------------------ snapshot
    def meta(self) -> dict[str, Any]:
        return {"next_offset": self.next_offset, "channels": dict(self.channels), "counts": dict(self.counts)}

    def restore(self, meta: dict[str, Any], items: dict[int, list[int]],
                query_items: dict[tuple[str, int], list[int]]) -> None:
        self.next_offset = meta["next_offset"]
        self.channels = dict(meta["channels"])
        self.counts = Counter(meta.get("counts", {}))
        self.items = items
        self.query_items = query_items
        self.reset_outputs()


__all__ = ["ItemStatsState", "Smoothing", "encode_records", "KIND_IMPRESSION", "KIND_CLICK", "KIND_ORDER"]
