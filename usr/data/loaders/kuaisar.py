"""KuaiSAR (Sun et al., CIKM 2023; schema from kuaisar.github.io) -> impression table.

Input: a directory with ``rec_inter.csv`` and ``src_inter.csv``, optionally
``item_features.csv`` and ``user_features.csv``. Published fields used:

- rec_inter: user_id, item_id, timestamp (ms), click, like, follow, forward
  (also time, playing_time, duration_ms, search, search_item_related: not used)
- src_inter: user_id, search_session_id, search_session_timestamp (ms), keyword (a JSON
  list of anonymised term ids), search_source, item_id, click_cnt, item_type
- item_features: item_id, author_id, first_level_category_id, second_level_category_id, ...
- user_features: user_id, search_active_level, rec_active_level, onehot_feat1, onehot_feat2

Mapping:
- rec rows: scenario "rec"; the log's timestamp is when the system delivered the item and
  it delivers several at once, so request_id = ``ks-r<user>-<timestamp>`` and position =
  row order within that delivery. click = ``click``.
- src rows: scenario "search"; request_id = ``ks-s<search_session_id>``; position = row
  order within the session; query = the keyword ids joined by spaces, query_terms = those
  ids, query_id = a stable hash; click = ``click_cnt > 0``. By default only VIDEO results
  are kept (other result types are users, live rooms, goods... with other id spaces).
- order: a short-video app has no purchase; the deeper engagement that follows a click
  stands in for it: order = click and any of ``order_columns`` (default like, follow,
  forward) -- only rec rows carry these, so search rows have order 0.
- items: cate1 = first_level_category_id, cate2 = second_level_category_id, brand =
  author_id (the creator plays the brand's role); users: user_segment =
  1 + onehot_feat1 * 8 + onehot_feat2, user_level = rec_active_level; 0 where unknown.
- time: ts in ms; day/hour/weekday in Beijing time (UTC+8), day 0 = the first day.
- history: the user's clicks in both scenarios strictly before the request, newest first,
  from the log itself (source SEARCH/REC, action ORDER where the click has order=1).
- global labels: same user and item clicked (ordered) on the same day in any scenario.
- p_click/p_ctcvr: NaN.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from usr.data.loaders.common import (
    build_table,
    global_labels,
    histories_from_log,
    positions_in_request,
    query_id_of,
    term_ids,
    time_fields,
)

BEIJING_UTC_OFFSET_H = 8.0
REC_COLUMNS = ("user_id", "item_id", "timestamp", "click")
SRC_COLUMNS = ("user_id", "search_session_id", "search_session_timestamp", "keyword", "item_id", "click_cnt")


def _require(df: pd.DataFrame, cols: Sequence[str], path: Path) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing KuaiSAR columns {missing}")


def _keywords(value: object) -> list[int]:
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value.replace(",", " ").strip("[] ").split()
        if isinstance(parsed, list):
            return term_ids(str(t) for t in parsed)
    return []


def load_kuaisar(data_dir: str | Path, order_columns: Sequence[str] = ("like", "follow", "forward"),
                 search_item_types: Sequence[str] | None = ("VIDEO",)) -> pa.Table:
    """Read a KuaiSAR directory into an IMPRESSION_SCHEMA table (see the module docstring)."""
    d = Path(data_dir)
    rec = pd.read_csv(d / "rec_inter.csv")
    src = pd.read_csv(d / "src_inter.csv")
    _require(rec, REC_COLUMNS, d / "rec_inter.csv")
    _require(src, SRC_COLUMNS, d / "src_inter.csv")
    if search_item_types is not None and "item_type" in src.columns:
        src = src[src["item_type"].isin(search_item_types)]

    rec_click = (rec["click"].to_numpy() > 0).astype(np.int8)
    engaged = np.zeros(len(rec), dtype=bool)
    for c in order_columns:
        if c in rec.columns:
            engaged |= rec[c].fillna(0).to_numpy() > 0
    rec_ts = rec["timestamp"].to_numpy(np.float64).astype(np.int64)
    rec_req = np.array([f"ks-r{u}-{t}" for u, t in zip(rec["user_id"], rec_ts)], dtype=object)

    src_terms = [_keywords(k) for k in src["keyword"]]
    src_ts = src["search_session_timestamp"].to_numpy(np.float64).astype(np.int64)
    src_req = np.array([f"ks-s{s}" for s in src["search_session_id"]], dtype=object)

    n_r, n_s = len(rec), len(src)
    user = np.r_[rec["user_id"].to_numpy(np.int64), src["user_id"].to_numpy(np.int64)]
    item = np.r_[rec["item_id"].to_numpy(np.int64), src["item_id"].to_numpy(np.int64)]
    ts = np.r_[rec_ts, src_ts]
    is_search = np.r_[np.zeros(n_r, bool), np.ones(n_s, bool)]
    request = np.r_[rec_req, src_req]
    click = np.r_[rec_click, (src["click_cnt"].to_numpy() > 0).astype(np.int8)]
    order = np.r_[(engaged & (rec_click > 0)).astype(np.int8), np.zeros(n_s, np.int8)]
    terms = [[] for _ in range(n_r)] + src_terms
    query = [""] * n_r + [" ".join(map(str, t)) for t in src_terms]
    query_id = np.array([0] * n_r + [query_id_of(t) for t in src_terms], dtype=np.int64)
    if n_s and any(not q for q in query[n_r:]):
        raise ValueError(f"{d / 'src_inter.csv'}: search rows with an empty keyword list")

    cate1 = np.zeros(user.size, np.int64)
    cate2 = np.zeros(user.size, np.int64)
    brand = np.zeros(user.size, np.int64)
    if (d / "item_features.csv").is_file():
        items = pd.read_csv(d / "item_features.csv").drop_duplicates("item_id").set_index("item_id")
        for col, out in (("first_level_category_id", cate1), ("second_level_category_id", cate2), ("author_id", brand)):
            if col in items.columns:
                out[:] = items[col].reindex(item).fillna(0).clip(lower=0).to_numpy(np.int64)
    seg = np.zeros(user.size, np.int32)
    level = np.zeros(user.size, np.int32)
    if (d / "user_features.csv").is_file():
        uf = pd.read_csv(d / "user_features.csv").drop_duplicates("user_id").set_index("user_id").reindex(user)
        if {"onehot_feat1", "onehot_feat2"} <= set(uf.columns):
            known = uf["onehot_feat1"].notna() & uf["onehot_feat2"].notna()
            seg = np.where(known, 1 + uf["onehot_feat1"].fillna(0) * 8 + uf["onehot_feat2"].fillna(0), 0).astype(np.int32)
        if "rec_active_level" in uf.columns:
            level = uf["rec_active_level"].fillna(0).to_numpy(np.int32)

    tf = time_fields(ts, BEIJING_UTC_OFFSET_H)
    g_click, g_order = global_labels(user, item, tf["day"], click, order)
    ev = np.flatnonzero(click > 0)
    hist = histories_from_log(user, ts, user[ev], ts[ev], item[ev], cate2[ev], brand[ev], is_search[ev], order[ev])
    pos = positions_in_request(request)
    return build_table({
        "event_id": [f"{r}-{p}" for r, p in zip(request, pos)],
        "request_id": list(request),
        "ts": ts, **tf,
        "user_id": user, "item_id": item,
        "scenario": np.where(is_search, "search", "rec").tolist(),
        "query": query, "query_id": query_id, "query_terms": terms,
        "position": pos,
        "user_segment": seg, "user_level": level,
        "cate1": cate1, "cate2": cate2, "brand": brand,
        "click": click, "order": order, "global_click": g_click, "global_order": g_order,
    }, hist)
