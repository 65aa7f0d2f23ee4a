"""Turning simulated days into the impression table and the raw event log.

Per day: impressions get timestamps, global labels (same user and item, any scenario,
same day), the history snapshot of their session, and are sorted by time; the event
log holds the impression, click and order events of the day, sorted by time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from usr.data.events import EVENT_LOG_SCHEMA, SCHEMA_VERSION
from usr.data.sim.generator import DayResult, Simulator
from usr.data.tables import IMPRESSION_SCHEMA

MS_HOUR = 3_600_000
MS_DAY = 86_400_000


def list_column(values: np.ndarray, counts: np.ndarray, type_: pa.DataType) -> pa.Array:
    """A list array from a (n, L) matrix whose first ``counts[r]`` entries of row r are valid."""
    n, width = values.shape
    valid = np.arange(width)[None, :] < counts[:, None]
    flat = values[valid]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.minimum(counts, width), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, type_.value_type))


def _ids(prefix: str, numbers: np.ndarray, suffix: pa.Array | str = "") -> pa.Array:
    """Strings prefix + number (+ suffix), built column-wise."""
    nums = pc.cast(pa.array(numbers, pa.int64()), pa.string())
    return pc.binary_join_element_wise(prefix, nums, suffix, "")


def _clicks_before(sess: np.ndarray, click: np.ndarray) -> np.ndarray:
    """Number of earlier clicks in the same session (rows grouped by session in position order)."""
    c = click.astype(np.int64)
    cum = np.cumsum(c) - c
    if sess.size == 0:
        return cum
    first = np.flatnonzero(np.r_[True, sess[1:] != sess[:-1]])
    sizes = np.diff(np.r_[first, sess.size])
    return cum - np.repeat(cum[first], sizes)


@dataclass
class DayTables:
    impressions: pa.Table
    events: pa.Table
    stats: dict[str, np.ndarray]   # per-impression arrays kept for the run's statistics
    n_pairs: int                   # distinct (user, item) pairs exposed today
    n_pairs_both: int              # ... of which exposed in both scenarios


def build_day_tables(sim: Simulator, res: DayResult, id_prefix: str) -> DayTables:
    cfg = sim.config
    world = sim.world
    cat = world.catalog
    users = world.users
    ss, sh = res.sessions, res.shown
    n = sh.item.size

    sess = sh.sess
    is_search = ss.is_search[sess]
    user = ss.user[sess]
    ms_per_pos = np.where(is_search, cfg.sessions.search_ms_per_position, cfg.sessions.rec_ms_per_position)
    start_ms = sim.day_start_ms(res.day) + np.round(ss.start_s * 1000.0).astype(np.int64)
    # timeline of a session: one position per scroll step, plus a product-page visit per click
    clicks_before = _clicks_before(sess, sh.click)
    page_ms = int(cfg.sessions.product_page_s * 1000)
    ts = start_ms[sess] + sh.position * ms_per_pos + clicks_before * page_ms

    # global labels: any click / order of the same user on the same item today
    pair = user * (cat.n_items + 1) + sh.item
    uniq, inv = np.unique(pair, return_inverse=True)
    k = uniq.size
    clicks_s = np.bincount(inv, weights=sh.click & is_search, minlength=k) > 0
    clicks_r = np.bincount(inv, weights=sh.click & ~is_search, minlength=k) > 0
    orders_any = np.bincount(inv, weights=sh.order, minlength=k) > 0
    seen_s = np.bincount(inv, weights=is_search, minlength=k) > 0
    seen_r = np.bincount(inv, weights=~is_search, minlength=k) > 0
    g_click = (clicks_s | clicks_r)[inv]
    g_order = orders_any[inv]
    other_click = np.where(is_search, clicks_r[inv], clicks_s[inv])
    both = (seen_s & seen_r)

    order = np.lexsort((sh.position, sess, ts))
    sess_o = sess[order]

    # query per session
    n_sess = ss.user.size
    q_texts = np.array([""] * n_sess, dtype=object)
    q_terms: list[list[int]] = [[] for _ in range(n_sess)]
    qid = np.zeros(n_sess, dtype=np.int64)
    srch = np.flatnonzero(ss.is_search)
    if srch.size:
        it = ss.intents
        qid[srch] = cat.query_id(it.cate2[srch], it.brand[srch], it.modifier[srch])
        cache: dict[int, tuple[str, list[int]]] = {}
        for s in srch:
            q = int(qid[s])
            if q not in cache:
                text = cat.query_text(int(it.cate2[s]), int(it.brand[s]), int(it.modifier[s]))
                cache[q] = (text, cat.vocab.terms(text))
            q_texts[s], q_terms[s] = cache[q]
    query_arr = pa.array(q_texts, pa.string()).take(pa.array(sess_o))
    term_counts = np.array([len(t) for t in q_terms], dtype=np.int64)
    term_width = max(int(term_counts.max()) if n_sess else 0, 1)
    term_mat = np.zeros((n_sess, term_width), dtype=np.int64)
    for s in srch:
        term_mat[s, :term_counts[s]] = q_terms[s]

    request_ids = _ids(f"{id_prefix}d{res.day}-r", np.arange(n_sess))
    req_o = request_ids.take(pa.array(sess_o))
    pos_o = sh.position[order]
    pos_str = pc.cast(pa.array(pos_o, pa.int64()), pa.string())
    imp_ids = pc.binary_join_element_wise(req_o, "-i", pos_str, "")
    item_o = sh.item[order]
    user_o = user[order]
    ts_o = ts[order]
    snap = ss.snapshot
    scen = np.where(is_search[order], "search", "rec")
    scen_arr = pa.array(scen, pa.string())

    cols = {
        "event_id": imp_ids,
        "request_id": req_o,
        "ts": pa.array(ts_o, pa.int64()),
        "day": pa.array(np.full(n, res.day), pa.int32()),
        "user_id": pa.array(user_o, pa.int64()),
        "item_id": pa.array(item_o, pa.int64()),
        "scenario": scen_arr,
        "query": query_arr,
        "query_id": pa.array(qid[sess_o], pa.int64()),
        "query_terms": list_column(term_mat[sess_o], term_counts[sess_o], IMPRESSION_SCHEMA.field("query_terms").type),
        "position": pa.array(pos_o, pa.int32()),
        "hour": pa.array((ts_o // MS_HOUR) % 24, pa.int32()),
        "weekday": pa.array((ts_o // MS_DAY + 3) % 7, pa.int32()),
        "user_segment": pa.array(users.segment[user_o], pa.int32()),
        "user_level": pa.array(users.level[user_o], pa.int32()),
        "cate1": pa.array(cat.cate1[item_o], pa.int64()),
        "cate2": pa.array(cat.cate2[item_o], pa.int64()),
        "brand": pa.array(cat.brand[item_o], pa.int64()),
        "price_bucket": pa.array(cat.price_bucket[item_o], pa.int32()),
    }
    counts = snap.count[sess_o]
    for name, arr in (("hist_item_id", snap.item), ("hist_cate2", snap.cate2), ("hist_brand", snap.brand),
                      ("hist_source", snap.source), ("hist_action", snap.action)):
        cols[name] = list_column(arr[sess_o], counts, IMPRESSION_SCHEMA.field(name).type)
    cols.update({
        "click": pa.array(sh.click[order].astype(np.int8), pa.int8()),
        "order": pa.array(sh.order[order].astype(np.int8), pa.int8()),
        "global_click": pa.array(g_click[order].astype(np.int8), pa.int8()),
        "global_order": pa.array(g_order[order].astype(np.int8), pa.int8()),
        "p_click": pa.array(sh.p_click[order].astype(np.float32), pa.float32()),
        "p_ctcvr": pa.array(sh.p_ctcvr[order].astype(np.float32), pa.float32()),
    })
    impressions = pa.table(cols, schema=IMPRESSION_SCHEMA)

    events = _events_table(sim, res, order, ts_o, req_o, query_arr, scen_arr, user_o, item_o, pos_o,
                           sess_o)
    stats = {
        "is_search": is_search[order], "click": sh.click[order], "order": sh.order[order],
        "global_click": g_click[order], "global_order": g_order[order], "other_click": other_click[order],
        "cross_pair": both[inv][order], "p_click": sh.p_click[order].astype(np.float32),
        "p_ctcvr": sh.p_ctcvr[order].astype(np.float32), "position": pos_o.astype(np.int16),
        "hist_len": counts.astype(np.int16),
    }
    return DayTables(impressions=impressions, events=events, stats=stats, n_pairs=int(k), n_pairs_both=int(both.sum()))


def _events_table(sim: Simulator, res: DayResult, order: np.ndarray, ts_o: np.ndarray,
                  req_o: pa.Array, query_arr: pa.Array, scen_arr: pa.Array, user_o: np.ndarray, item_o: np.ndarray,
                  pos_o: np.ndarray, sess_o: np.ndarray) -> pa.Table:
    """Impression, click and order events of the day, time-ordered."""
    cfg = sim.config
    rng = np.random.default_rng([cfg.seed, 3, res.day])
    sh, ss = res.shown, res.sessions
    click_o = sh.click[order]
    order_o = sh.order[order]
    n = ts_o.size
    # a click comes while the item is in view (before the next scroll step); orders at
    # checkout, after the last item of the session was seen
    ms_per_pos = np.where(ss.is_search, cfg.sessions.search_ms_per_position, cfg.sessions.rec_ms_per_position)
    click_ts = ts_o + (rng.uniform(0.2, 0.9, size=n) * ms_per_pos[sess_o]).astype(np.int64)
    lo, hi = cfg.order.checkout_delay_s
    last_seen = np.full(ss.user.size, 0, dtype=np.int64)
    np.maximum.at(last_seen, sess_o, ts_o)
    checkout = last_seen + (rng.uniform(lo, hi, size=ss.user.size) * 1000).astype(np.int64)
    order_ts = checkout[sess_o] + pos_o

    ci = np.flatnonzero(click_o)
    oi = np.flatnonzero(order_o)
    idx = np.concatenate([np.arange(n), ci, oi])
    kind = np.concatenate([np.zeros(n, np.int8), np.ones(ci.size, np.int8), np.full(oi.size, 2, np.int8)])
    ets = np.concatenate([ts_o, click_ts[ci], order_ts[oi]])
    eorder = np.lexsort((kind, idx, ets))
    idx_e, kind_e = idx[eorder], kind[eorder]
    suffix = np.array(["-i", "-c", "-o"], dtype=object)[kind_e]
    types = np.array(["impression", "click", "order"], dtype=object)[kind_e]
    pos_str = pc.cast(pa.array(pos_o[idx_e], pa.int64()), pa.string())
    take = pa.array(idx_e)
    return pa.table({
        "schema_version": pa.array(np.full(idx_e.size, SCHEMA_VERSION), pa.int32()),
        "event_type": pa.array(types, pa.string()),
        "event_id": pc.binary_join_element_wise(req_o.take(take), pa.array(suffix, pa.string()), pos_str, ""),
        "request_id": req_o.take(take),
        "user_id": pa.array(user_o[idx_e], pa.int64()),
        "item_id": pa.array(item_o[idx_e], pa.int64()),
        "scenario": scen_arr.take(take),
        "query": query_arr.take(take),
        "position": pa.array(pos_o[idx_e], pa.int32()),
        "ts": pa.array(ets[eorder], pa.int64()),
    }, schema=EVENT_LOG_SCHEMA)
