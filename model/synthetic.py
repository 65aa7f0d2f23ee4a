"""A tiny random impression table for unit tests and benchmarks (not the simulator).

It fills every column of ``IMPRESSION_SCHEMA`` with a small planted signal (users prefer
some second-level categories; search clicks follow the query's category) so that tests
can check that training learns something. Real experiments use ``usr simulate`` data.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from usr.data.tables import HISTORY_LEN, IMPRESSION_SCHEMA


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def random_impressions(n: int, *, seed: int = 0, n_users: int = 300, n_items: int = 500,
                       n_cate2: int = 20, days: int = 4, max_hist: int = HISTORY_LEN) -> pa.Table:
    rng = np.random.default_rng(seed)
    item_cate2 = rng.integers(1, n_cate2 + 1, n_items + 1)
    item_cate1 = (item_cate2 - 1) // 5 + 1
    item_brand = rng.integers(1, 60, n_items + 1)
    item_price = rng.integers(1, 10, n_items + 1)
    user_pref = rng.integers(1, n_cate2 + 1, (n_users + 1, 2))

    user = rng.integers(1, n_users + 1, n)
    item = rng.integers(1, n_items + 1, n)
    is_search = rng.random(n) < 0.5
    day = np.sort(rng.integers(0, days, n)).astype(np.int32)
    position = rng.integers(0, 20, n).astype(np.int32)
    query_cate = np.where(is_search, rng.integers(1, n_cate2 + 1, n), 0)
    # search shows items of the query's category most of the time
    same_cate_items = rng.integers(1, n_items + 1, n)
    item = np.where(is_search & (rng.random(n) < 0.6), same_cate_items, item)
    cate2 = item_cate2[item]
    pref_hit = (user_pref[user, 0] == cate2) | (user_pref[user, 1] == cate2)
    query_hit = is_search & (query_cate == cate2)
    logit = -2.2 + 1.6 * pref_hit + 1.8 * query_hit - 0.03 * position
    p_click = _sigmoid(logit)
    p_cvr = _sigmoid(-1.5 + 1.0 * pref_hit - 0.15 * item_price[item])
    click = (rng.random(n) < p_click).astype(np.int8)
    order = (click.astype(bool) & (rng.random(n) < p_cvr)).astype(np.int8)
    global_click = np.maximum(click, (rng.random(n) < 0.3 * p_click).astype(np.int8))
    global_order = np.maximum(order, (global_click.astype(bool) & (rng.random(n) < 0.2 * p_cvr)).astype(np.int8))

    hist_lens = rng.integers(0, max_hist + 1, n)
    hist_item, hist_cate2, hist_brand, hist_source, hist_action = [], [], [], [], []
    for u, k in zip(user, hist_lens):
        liked = rng.random(k) < 0.6
        items = rng.integers(1, n_items + 1, k)
        hc2 = np.where(liked, user_pref[u, rng.integers(0, 2, k)], item_cate2[items])
        hist_item.append(items.tolist())
        hist_cate2.append(hc2.tolist())
        hist_brand.append(item_brand[items].tolist())
        hist_source.append(rng.integers(1, 3, k).tolist())
        hist_action.append(np.where(rng.random(k) < 0.2, 2, 1).tolist())

    terms = [[int(q) * 10 + j for j in range(rng.integers(1, 4))] if s else [] for q, s in zip(query_cate, is_search)]
    cols = {
        "event_id": [f"e{i}" for i in range(n)],
        "request_id": [f"r{i // 10}" for i in range(n)],
        "ts": (day.astype(np.int64) * 86_400_000 + np.arange(n)),
        "day": day,
        "user_id": user.astype(np.int64),
        "item_id": item.astype(np.int64),
        "scenario": np.where(is_search, "search", "rec").tolist(),
        "query": [f"q{q}" if s else "" for q, s in zip(query_cate, is_search)],
        "query_id": query_cate.astype(np.int64),
        "query_terms": terms,
        "position": position,
        "hour": rng.integers(0, 24, n).astype(np.int32),
        "weekday": ((day + 2) % 7).astype(np.int32),
        "user_segment": (user % 7 + 1).astype(np.int32),
        "user_level": (user % 4 + 1).astype(np.int32),
        "cate1": item_cate1[item].astype(np.int64),
        "cate2": cate2.astype(np.int64),
        "brand": item_brand[item].astype(np.int64),
        "price_bucket": item_price[item].astype(np.int32),
        "hist_item_id": hist_item,
        "hist_cate2": hist_cate2,
        "hist_brand": hist_brand,
        "hist_source": hist_source,
        "hist_action": hist_action,
        "click": click,
        "order": order,
        "global_click": global_click,
        "global_order": global_order,
        "p_click": p_click.astype(np.float32),
        "p_ctcvr": (p_click * p_cvr).astype(np.float32),
    }
    arrays = [pa.array(cols[f.name], type=f.type) for f in IMPRESSION_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=IMPRESSION_SCHEMA)
