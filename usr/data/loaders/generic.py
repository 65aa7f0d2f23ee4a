"""A generic impression log (CSV or Parquet) -> impression table.

One row per impression. Columns (names are case-sensitive; aliases in brackets):

==============  ========  =========================================================
column          required  meaning
==============  ========  =========================================================
user_id [user]  yes       integer user id
item_id [item]  yes       integer item id
scenario        yes       "search" or "rec" (also accepted: "s"/"r", "src", "recommendation")
ts [timestamp]  yes       ms since the Unix epoch (integer), or a datetime column/ISO string
click           yes       0/1
order           no        0/1, only counted where click = 1 (default 0)
query           no        search query text; tokens that are integers are used as term ids,
                          others get stable hashed ids (default "")
request_id      no        id of the served list; default: one request per (user, scenario,
                          query, ts)
position        no        0-based slot in the list; default: row order within the request
event_id        no        default ``<request_id>-<position>``
cate1, cate2,   no        item fields (integers, 0 = unknown)
brand,
price_bucket
user_segment,   no        user profile buckets (integers, 0 = unknown)
user_level
==============  ========  =========================================================

Derived: day/hour/weekday from ts (``tz_offset_hours``, day 0 = first day of the log);
query_id = stable hash of the query terms; global labels = any click/order of the same user
on the same item on the same day in any scenario; behaviour history = the user's clicks
strictly before the impression's request, newest first (<= 50), with source and action
(ORDER where that click's row has order = 1). p_click/p_ctcvr: NaN.
"""
from __future__ import annotations

from pathlib import Path

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

ALIASES = {"user": "user_id", "item": "item_id", "timestamp": "ts"}
SCENARIO_NAMES = {"search": "search", "s": "search", "src": "search", "rec": "rec", "r": "rec",
                  "recommendation": "rec"}
REQUIRED = ("user_id", "item_id", "scenario", "ts", "click")


def read_log(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(p)
    return pd.read_csv(p)


def _ts_ms(col: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(col):
        return col.dt.tz_localize(None).to_numpy("datetime64[ms]").astype(np.int64) if col.dt.tz is None else \
            col.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[ms]").astype(np.int64)
    if pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(np.float64).astype(np.int64)
    return pd.to_datetime(col, utc=True).dt.tz_localize(None).to_numpy("datetime64[ms]").astype(np.int64)


def load_generic(path_or_frame: str | Path | pd.DataFrame, tz_offset_hours: float = 0.0) -> pa.Table:
    """Read a generic impression log (see the module docstring) into an IMPRESSION_SCHEMA table."""
    df = path_or_frame.copy() if isinstance(path_or_frame, pd.DataFrame) else read_log(path_or_frame)
    df = df.rename(columns={a: c for a, c in ALIASES.items() if a in df.columns and c not in df.columns})
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"generic impression log is missing required columns {missing}")
    n = len(df)
    scen_raw = df["scenario"].astype(str).str.strip().str.lower()
    scen = scen_raw.map(SCENARIO_NAMES)
    if scen.isna().any():
        bad = sorted(scen_raw[scen.isna()].unique().tolist())[:5]
        raise ValueError(f"column 'scenario' has unknown values {bad} (expected search or rec)")
    is_search = (scen == "search").to_numpy()
    user = df["user_id"].to_numpy(np.int64)
    item = df["item_id"].to_numpy(np.int64)
    ts = _ts_ms(df["ts"])
    click = (df["click"].fillna(0).to_numpy() > 0).astype(np.int8)
    order = ((df["order"].fillna(0).to_numpy() > 0) & (click > 0)).astype(np.int8) if "order" in df.columns \
        else np.zeros(n, np.int8)

    query = df["query"].fillna("").astype(str).str.strip().tolist() if "query" in df.columns else [""] * n
    query = [q if s else "" for q, s in zip(query, is_search)]
    terms = [term_ids(q.split()) for q in query]
    qid_cache: dict[str, int] = {}
    query_id = np.array([qid_cache.setdefault(q, query_id_of(t)) for q, t in zip(query, terms)], dtype=np.int64)

    if "request_id" in df.columns:
        request = df["request_id"].astype(str).to_numpy(dtype=object)
    else:
        request = np.array([f"g-{u}-{s}-{t}-{qid}" for u, s, t, qid in zip(user, scen, ts, query_id)], dtype=object)
    pos = df["position"].to_numpy(np.int64) if "position" in df.columns else positions_in_request(request)
    event_id = df["event_id"].astype(str).tolist() if "event_id" in df.columns else \
        [f"{r}-{p}" for r, p in zip(request, pos)]

    optional = {}
    for col in ("cate1", "cate2", "brand", "price_bucket", "user_segment", "user_level"):
        optional[col] = df[col].fillna(0).to_numpy(np.int64) if col in df.columns else np.zeros(n, np.int64)

    tf = time_fields(ts, tz_offset_hours)
    g_click, g_order = global_labels(user, item, tf["day"], click, order)
    # a request's history is taken at its first impression's time
    req_ts = pd.Series(ts).groupby(request).transform("min").to_numpy(np.int64) if n else ts
    ev = np.flatnonzero(click > 0)
    hist = histories_from_log(user, req_ts, user[ev], ts[ev], item[ev], optional["cate2"][ev],
                              optional["brand"][ev], is_search[ev], order[ev])
    return build_table({
        "event_id": event_id, "request_id": list(request), "ts": ts, **tf,
        "user_id": user, "item_id": item, "scenario": scen.tolist(),
        "query": query, "query_id": query_id, "query_terms": terms, "position": pos,
        **optional,
        "click": click, "order": order, "global_click": g_click, "global_order": g_order,
    }, hist)
