"""The stream's outputs computed in batch from a whole event log (a pure function).

The reference the stream is checked against: the same rules as :mod:`streams.state`
(see its docstring), implemented independently with vectorised pandas/numpy joins over
the whole log instead of incremental state. For a closed log (every partition's
watermark passed the end, e.g. after end-of-log markers) the stream's labelled rows,
online features and item statistics must equal what this module returns.

Input: the events in the order they were published (``EVENT_LOG_SCHEMA`` columns, e.g.
``events.parquet``, possibly with duplicates or late events); the partition of an event
is the Kafka default partitioner's (murmur2 of the user-id key), because lateness and
duplicates are judged per topic-partition in offset order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features.layout import USER_WINDOWS
from streams.catalog import Catalog, normalise_query
from streams.item_state import Smoothing
from streams.state import MS_DAY, MS_HOUR, StateConfig
from usr.data.tables import ACTION_CLICK, ACTION_ORDER, IMPRESSION_SCHEMA, SOURCE_REC, SOURCE_SEARCH

KIND = {"impression": 0, "click": 1, "order": 2}


def kafka_partition(user_ids: np.ndarray, partitions: int) -> np.ndarray:
    """The partition kafka's default partitioner picks for the key ``str(user_id)``."""
    from kafka.partitioner.default import murmur2

    cache: dict[int, int] = {}
    out = np.empty(len(user_ids), dtype=np.int64)
    for i, u in enumerate(np.asarray(user_ids, dtype=np.int64).tolist()):
        p = cache.get(u)
        if p is None:
            p = cache[u] = (murmur2(str(u).encode("ascii")) & 0x7FFFFFFF) % partitions
        out[i] = p
    return out


@dataclass
class OfflineResult:
    rows: pa.Table                       # IMPRESSION_SCHEMA, sorted by (ts, event_id)
    users: dict[int, dict[str, Any]]     # user_history + user_counters features per user
    items: dict[int, dict[str, Any]]     # item_stats + item_popularity features per item
    query_items: dict[tuple[str, int], dict[str, Any]]
    accepted: pd.DataFrame               # the accepted events
    rejected: pd.DataFrame               # late events and orders without a click (with reason)


def accepted_events(log: pd.DataFrame, partitions: int, cfg: StateConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accepted, late): per (topic, partition) in log order, an event older than the
    newest earlier one by more than the lateness bound is late; among the rest, the first
    occurrence of an event id is accepted and later ones are duplicates."""
    df = log.reset_index(drop=True).copy()
    df["seq"] = np.arange(len(df))
    df["kind"] = df["event_type"].map(KIND).astype(np.int64)
    df["partition"] = kafka_partition(df["user_id"].to_numpy(), partitions)
    prev_max = df.groupby(["kind", "partition"], sort=False)["ts"].transform(lambda s: s.cummax().shift(1))
    late = prev_max.notna() & (df["ts"] < prev_max - cfg.lateness_ms)
    ok = df[~late]
    ok = ok[~ok.duplicated(["kind", "partition", "event_id"], keep="first")]
    return ok.copy(), df[late].assign(reason="late")


def valid_orders(clicks: pd.DataFrame, orders: pd.DataFrame, cfg: StateConfig) -> pd.Series:
    """Mask over ``orders``: a click on the same (user, request, item) at most
    order_window before the order."""
    if orders.empty:
        return pd.Series([], dtype=bool)
    m = orders[["seq", "user_id", "request_id", "item_id", "ts"]].merge(
        clicks[["user_id", "request_id", "item_id", "ts"]].rename(columns={"ts": "cts"}),
        on=["user_id", "request_id", "item_id"], how="inner")
    m = m[(m["cts"] <= m["ts"]) & (m["cts"] >= m["ts"] - cfg.order_window_ms)]
    return orders["seq"].isin(set(m["seq"]))


def _any_within(left: pd.DataFrame, right: pd.DataFrame, on: list[str], lo: str, hi: str, col: str) -> np.ndarray:
    """For each row of ``left``: does ``right`` have a row with the same ``on`` keys and
    ``left[lo] <= right[col] <= left[hi]``?"""
    if left.empty or right.empty:
        return np.zeros(len(left), dtype=bool)
    m = left[["row", *on, lo, hi]].merge(right[[*on, col]].rename(columns={col: "_r"}), on=on, how="inner")
    hit = m[(m["_r"] >= m[lo]) & (m["_r"] <= m[hi])]["row"].unique()
    out = np.zeros(len(left), dtype=bool)
    out[hit] = True
    return out


def _click_order_ts(clicks: pd.DataFrame, orders: pd.DataFrame, cfg: StateConfig) -> np.ndarray:
    """Per click: the earliest valid order of its (user, request, item) within the order
    window after it (int64 max when none)."""
    none = np.iinfo(np.int64).max
    if clicks.empty or orders.empty:
        return np.full(len(clicks), none, dtype=np.int64)
    c = clicks[["user_id", "request_id", "item_id", "ts"]].assign(row=np.arange(len(clicks)))
    m = c.merge(orders[["user_id", "request_id", "item_id", "ts"]].rename(columns={"ts": "ots"}),
                on=["user_id", "request_id", "item_id"], how="inner")
    m = m[(m["ots"] >= m["ts"]) & (m["ots"] <= m["ts"] + cfg.order_window_ms)]
    first = m.groupby("row")["ots"].min()
    out = np.full(len(clicks), none, dtype=np.int64)
    out[first.index.to_numpy()] = first.to_numpy()
    return out


def _histories(clicks: pd.DataFrame, at_user: np.ndarray, at_ts: np.ndarray, L: int,
               order_ts: np.ndarray, catalog: Catalog, pit: bool) -> dict[str, list]:
    """The last L clicks of ``at_user[j]`` before ``at_ts[j]`` (all, when ``pit`` is False),
    newest first, as the five hist_* lists (+ query and ts)."""
    # clicks are sorted by (user, ts, event_id): one contiguous block per user
    cu = clicks["user_id"].to_numpy()
    cts = clicks["ts"].to_numpy()
    bounds: dict[int, tuple[int, int]] = {}
    if len(cu):
        users_sorted, first = np.unique(cu, return_index=True)
        for u, a, b in zip(users_sorted.tolist(), first.tolist(), np.r_[first[1:], len(cu)].tolist()):
            bounds[u] = (a, b)
    start = np.zeros(len(at_user), dtype=np.int64)
    end = np.zeros(len(at_user), dtype=np.int64)
    for j, u in enumerate(np.asarray(at_user).tolist()):
        a, b = bounds.get(u, (0, 0))
        start[j] = a
        end[j] = a + int(np.searchsorted(cts[a:b], at_ts[j], side="left")) if pit else b
    n = np.minimum(end - start, L)
    items = clicks["item_id"].to_numpy()
    scen = clicks["scenario"].to_numpy()
    query = clicks["query"].to_numpy()
    cate2 = catalog.item_column("cate2", items)
    brand = catalog.item_column("brand", items)
    out: dict[str, list] = {k: [] for k in ("hist_item_id", "hist_cate2", "hist_brand", "hist_source",
                                             "hist_action", "hist_query", "hist_ts")}
    for j in range(len(at_user)):
        idx = np.arange(end[j] - 1, end[j] - 1 - n[j], -1, dtype=np.int64)
        out["hist_item_id"].append(items[idx].tolist())
        out["hist_cate2"].append(cate2[idx].tolist())
        out["hist_brand"].append(brand[idx].tolist())
        out["hist_source"].append(np.where(scen[idx] == "search", SOURCE_SEARCH, SOURCE_REC).tolist())
        ordered = order_ts[idx] < at_ts[j] if pit else order_ts[idx] < np.iinfo(np.int64).max
        out["hist_action"].append(np.where(ordered, ACTION_ORDER, ACTION_CLICK).tolist())
        out["hist_query"].append(query[idx].tolist())
        out["hist_ts"].append(cts[idx].tolist())
    return out


def compute(log: pd.DataFrame | pa.Table, catalog: Catalog, cfg: StateConfig, partitions: int,
            smoothing: Smoothing = Smoothing()) -> OfflineResult:
    """Everything the stream produces for a closed log."""
    if isinstance(log, pa.Table):
        log = log.to_pandas()
    acc, late = accepted_events(log, partitions, cfg)
    acc["query"] = acc["query"].fillna("")
    imps = acc[acc["kind"] == 0].sort_values(["ts", "event_id"]).reset_index(drop=True)
    clicks = acc[acc["kind"] == 1].sort_values(["user_id", "ts", "event_id"]).reset_index(drop=True)
    orders_all = acc[acc["kind"] == 2].reset_index(drop=True)
    ok = valid_orders(clicks, orders_all, cfg).to_numpy() if len(orders_all) else np.zeros(0, dtype=bool)
    orders = orders_all[ok].reset_index(drop=True)
    no_click = orders_all[~ok].assign(reason="order without a click")
    cw, ow = cfg.click_window_ms, cfg.order_window_ms

    # ---- labels
    left = imps[["user_id", "request_id", "item_id", "ts"]].assign(row=np.arange(len(imps)), hi_c=imps["ts"] + cw,
                                                                    hi_o=imps["ts"] + cw + ow)
    click = _any_within(left, clicks, ["user_id", "request_id", "item_id"], "ts", "hi_c", "ts")
    g_click = _any_within(left, clicks, ["user_id", "item_id"], "ts", "hi_c", "ts")
    g_order = _any_within(left, orders, ["user_id", "item_id"], "ts", "hi_o", "ts")
    # order: a valid order of the (request, item) within ow after an attributed click
    order = np.zeros(len(imps), dtype=bool)
    if len(imps) and len(clicks) and len(orders):
        m = left[["row", "user_id", "request_id", "item_id", "ts", "hi_c"]].merge(
            clicks[["user_id", "request_id", "item_id", "ts"]].rename(columns={"ts": "cts"}),
            on=["user_id", "request_id", "item_id"])
        m = m[(m["cts"] >= m["ts"]) & (m["cts"] <= m["hi_c"])]
        m = m.merge(orders[["user_id", "request_id", "item_id", "ts"]].rename(columns={"ts": "ots"}),
                    on=["user_id", "request_id", "item_id"])
        m = m[(m["ots"] >= m["cts"]) & (m["ots"] <= m["cts"] + ow)]
        order[m["row"].unique()] = True

    # ---- histories as of each impression
    order_ts = _click_order_ts(clicks, orders, cfg)
    ts = imps["ts"].to_numpy()
    hist = _histories(clicks, imps["user_id"].to_numpy(), ts, cfg.history_len, order_ts, catalog, pit=True)
    item_ids = imps["item_id"].to_numpy()
    qf = [catalog.query_features(q) for q in imps["query"]]
    users_arr = imps["user_id"].to_numpy()
    rows = pa.table({
        "event_id": pa.array(imps["event_id"], pa.string()),
        "request_id": pa.array(imps["request_id"], pa.string()),
        "ts": pa.array(ts, pa.int64()),
        "day": pa.array((ts - cfg.day_origin_ms) // MS_DAY, pa.int32()),
        "user_id": pa.array(users_arr, pa.int64()),
        "item_id": pa.array(item_ids, pa.int64()),
        "scenario": pa.array(imps["scenario"], pa.string()),
        "query": pa.array(imps["query"], pa.string()),
        "query_id": pa.array([q[0] for q in qf], pa.int64()),
        "query_terms": pa.array([list(q[1]) for q in qf], pa.list_(pa.int64())),
        "position": pa.array(imps["position"], pa.int32()),
        "hour": pa.array((ts // MS_HOUR) % 24, pa.int32()),
        "weekday": pa.array((ts // MS_DAY + 3) % 7, pa.int32()),
        "user_segment": pa.array(catalog.user_column("user_segment", users_arr), pa.int32()),
        "user_level": pa.array(catalog.user_column("user_level", users_arr), pa.int32()),
        **{c: pa.array(catalog.item_column(c, item_ids), IMPRESSION_SCHEMA.field(c).type)
           for c in ("cate1", "cate2", "brand", "price_bucket")},
        **{name: pa.array(hist[name], IMPRESSION_SCHEMA.field(name).type)
           for name in ("hist_item_id", "hist_cate2", "hist_brand", "hist_source", "hist_action")},
        "click": pa.array(click.astype(np.int8), pa.int8()),
        "order": pa.array(order.astype(np.int8), pa.int8()),
        "global_click": pa.array(g_click.astype(np.int8), pa.int8()),
        "global_order": pa.array(g_order.astype(np.int8), pa.int8()),
        "p_click": pa.array(np.full(len(imps), np.nan, dtype=np.float32), pa.float32()),
        "p_ctcvr": pa.array(np.full(len(imps), np.nan, dtype=np.float32), pa.float32()),
    }, schema=IMPRESSION_SCHEMA)

    # ---- final online features of users
    counted = pd.concat([imps[["user_id", "kind", "scenario", "ts"]], clicks[["user_id", "kind", "scenario", "ts"]],
                         orders[["user_id", "kind", "scenario", "ts"]]], ignore_index=True)
    users: dict[int, dict[str, Any]] = {}
    if len(counted):
        last_ts = counted.groupby("user_id")["ts"].max()
        uids = last_ts.index.to_numpy()
        final_hist = _histories(clicks, uids, np.full(len(uids), np.iinfo(np.int64).max), cfg.history_len,
                                order_ts, catalog, pit=False)
        step = cfg.window_bucket_ms
        counted["bucket"] = counted["ts"] // step
        counted["b_u"] = counted["user_id"].map(last_ts // step)
        counted["slot"] = np.where(counted["scenario"] == "search", 0, 3) + counted["kind"]
        windows = {}
        for name, n in zip(USER_WINDOWS, cfg.window_buckets):
            inside = counted[(counted["bucket"] > counted["b_u"] - n) & (counted["bucket"] <= counted["b_u"])]
            windows[name] = inside.groupby(["user_id", "slot"]).size().unstack(fill_value=0)
        for j, uid in enumerate(uids.tolist()):
            f = {k: v[j] for k, v in final_hist.items()}
            f["counts_as_of"] = int(last_ts.loc[uid])
            for name, table in windows.items():
                six = [int(table.at[uid, s]) if uid in table.index and s in table.columns else 0 for s in range(6)]
                f[f"counts_{name}"] = six + [six[0] + six[3], six[1] + six[4], six[2] + six[5]]
            users[uid] = f

    # ---- item and query-item statistics
    items: dict[int, dict[str, Any]] = {}
    query_items: dict[tuple[str, int], dict[str, Any]] = {}
    if len(counted):
        ev = pd.concat([imps[["item_id", "kind", "scenario", "query", "ts"]],
                        clicks[["item_id", "kind", "scenario", "query", "ts"]],
                        orders[["item_id", "kind", "scenario", "query", "ts"]]], ignore_index=True)
        ev["slot"] = np.where(ev["scenario"] == "search", 0, 3) + ev["kind"]
        per = ev.groupby(["item_id", "slot"]).size().unstack(fill_value=0)
        last = ev.groupby("item_id")["ts"].max()
        sm = smoothing
        for item in per.index.tolist():
            s = [int(per.at[item, k]) if k in per.columns else 0 for k in range(6)]
            ia, ca, oa = s[0] + s[3], s[1] + s[4], s[2] + s[5]
            items[item] = {"counts": s + [ia, ca, oa],
                           "rates": [sm.ctr(s[0], s[1]), sm.cvr(s[1], s[2]), sm.ctr(s[3], s[4]), sm.cvr(s[4], s[5]),
                                     sm.ctr(ia, ca), sm.cvr(ca, oa)],
                           "impressions": ia, "clicks": ca, "orders": oa, "ctr": sm.ctr(ia, ca),
                           "last_ts": int(last.loc[item])}
        srch = ev[(ev["scenario"] == "search")].copy()
        srch["qkey"] = srch["query"].map(normalise_query)
        srch = srch[srch["qkey"] != ""]
        if len(srch):
            qi = srch.groupby(["qkey", "item_id", "kind"]).size().unstack(fill_value=0)
            qlast = srch.groupby(["qkey", "item_id"])["ts"].max()
            for (q, item) in qi.index.tolist():
                c = [int(qi.at[(q, item), k]) if k in qi.columns else 0 for k in range(3)]
                query_items[(q, item)] = {"counts": c, "ctr": sm.ctr(c[0], c[1]), "last_ts": int(qlast.loc[(q, item)])}
    rejected = pd.concat([late, no_click], ignore_index=True)
    return OfflineResult(rows=rows.sort_by([("ts", "ascending"), ("event_id", "ascending")]), users=users,
                         items=items, query_items=query_items, accepted=acc, rejected=rejected)
