"""Online features for ranking: the user's features per request, item features in
batches through a TTL cache, and item popularity for the fallback ranking.

Unknown users and items get default (missing) values, never an error: missing ids
hash to the padding row of their embedding table.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

USER_COLUMNS = ("user_segment", "user_level", "hist_item_id", "hist_cate2", "hist_brand", "hist_source", "hist_action")
ITEM_COLUMNS = ("cate1", "cate2", "brand", "price_bucket", "popularity")


class FeatureSource(Protocol):
    def user(self, user_id: int) -> dict[str, Any]: ...
    def items(self, item_ids: Sequence[int]) -> dict[int, dict[str, Any]]: ...


@dataclass(frozen=True)
class FeastRefs:
    """Which Feast feature (``view:feature``) holds each column the gateway needs."""
    user: dict[str, str] = field(default_factory=lambda: {
        "user_segment": "user_profile:user_segment", "user_level": "user_profile:user_level",
        "hist_item_id": "user_history:hist_item_id", "hist_cate2": "user_history:hist_cate2",
        "hist_brand": "user_history:hist_brand", "hist_source": "user_history:hist_source",
        "hist_action": "user_history:hist_action"})
    item: dict[str, str] = field(default_factory=lambda: {
        "cate1": "item_catalog:cate1", "cate2": "item_catalog:cate2", "brand": "item_catalog:brand",
        "price_bucket": "item_catalog:price_bucket", "popularity": "item_popularity:ctr"})


def _clean(value: Any, column: str) -> Any:
    if column.startswith("hist_"):
        return list(value) if value is not None else []
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return 0
    return value


class FeastFeatureSource:
    """Reads the Feast online store (SQLite or Redis, per the stack's configuration)."""

    def __init__(self, store, refs: FeastRefs | None = None) -> None:
        self.store = store
        self.refs = refs or FeastRefs()

    def _read(self, mapping: dict[str, str], key: str, ids: Sequence[int]) -> list[dict[str, Any]]:
        refs = list(mapping.values())
        got = self.store.get_online_features(features=refs, entity_rows=[{key: int(i)} for i in ids]).to_dict()
        by_feature = {ref: got[ref.split(":", 1)[1]] for ref in refs}
        return [{col: _clean(by_feature[ref][k], col) for col, ref in mapping.items()} for k in range(len(ids))]

    def user(self, user_id: int) -> dict[str, Any]:
        return self._read(self.refs.user, "user_id", [user_id])[0]

    def items(self, item_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        rows = self._read(self.refs.item, "item_id", item_ids)
        return {int(i): r for i, r in zip(item_ids, rows)}


class ItemCache:
    """Item features cached for ``ttl_s`` seconds; misses are fetched in one batch.

    Staleness is bounded by the TTL; ``invalidate`` drops entries at once (the stream
    updates statistics continuously, catalog fields rarely change).
    """

    def __init__(self, source: FeatureSource, ttl_s: float, max_entries: int = 500_000) -> None:
        self.source, self.ttl_s, self.max_entries = source, ttl_s, max_entries
        self._entries: dict[int, tuple[float, dict[str, Any]]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, item_ids: Sequence[int]) -> list[dict[str, Any]]:
        now = time.monotonic()
        found: dict[int, dict[str, Any]] = {}
        missing = []
        for i in item_ids:
            entry = self._entries.get(int(i))
            if entry is not None and entry[0] > now:
                found[int(i)] = entry[1]
            else:
                missing.append(int(i))
        self.hits += len(item_ids) - len(missing)
        self.misses += len(missing)
        if missing:
            fetched = self.source.items(missing)
            if len(self._entries) + len(fetched) > self.max_entries:
                self._entries.clear()
            expires = now + self.ttl_s
            for i, row in fetched.items():
                self._entries[i] = (expires, row)
                found[i] = row
        return [found[int(i)] for i in item_ids]

    def invalidate(self, item_ids: Sequence[int] | None = None) -> None:
        if item_ids is None:
            self._entries.clear()
        else:
            for i in item_ids:
                self._entries.pop(int(i), None)
