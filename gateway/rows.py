"""Assemble impression-table columns for one request's candidates, the input that
features.tensors.build_input_arrays turns into model tensors (the trainer's code)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from gateway.validation import RankQuery
from usr.data.tables import SCENARIO_ID

ITEM_FIELDS = ("cate1", "cate2", "brand", "price_bucket")
SERVE_POSITION = 0  # position is unknown before ranking: every candidate is scored as if on top


def repeated_list(values: Any, n: int) -> pa.ListArray:
    """The same list in each of ``n`` rows, built without per-row Python lists."""
    flat = np.asarray(list(values or []), dtype=np.int64)
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * len(flat))
    return pa.ListArray.from_arrays(offsets, pa.array(np.tile(flat, n)))


def candidate_columns(query: RankQuery, user: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(query.candidates)
    columns: dict[str, Any] = {
        "scenario": np.full(n, SCENARIO_ID[query.scenario], dtype=np.int64),
        "user_id": np.full(n, query.user_id, dtype=np.int64),
        "user_segment": np.full(n, int(user.get("user_segment") or 0), dtype=np.int64),
        "user_level": np.full(n, int(user.get("user_level") or 0), dtype=np.int64),
        "item_id": query.candidates,
        "hour": np.full(n, query.hour, dtype=np.int64),
        "weekday": np.full(n, query.weekday, dtype=np.int64),
        "position": np.full(n, SERVE_POSITION, dtype=np.int64),
        "query_id": np.full(n, query.query_id, dtype=np.int64),
        "query_terms": repeated_list(query.query_terms, n),
    }
    for f in ITEM_FIELDS:
        columns[f] = np.fromiter((int(r.get(f) or 0) for r in items), dtype=np.int64, count=n)
    for f in ("hist_item_id", "hist_cate2", "hist_brand", "hist_source", "hist_action"):
        columns[f] = repeated_list(user.get(f), n)
    return columns
