"""Shared pieces of the real-log loaders: stable ids, time fields, behaviour histories
built from the log itself, global labels, and assembling an IMPRESSION_SCHEMA table."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pyarrow as pa

from usr.data.tables import (
    ACTION_CLICK,
    ACTION_ORDER,
    HISTORY_LEN,
    IMPRESSION_SCHEMA,
    SCENARIOS,
    SOURCE_REC,
    SOURCE_SEARCH,
)

MS_HOUR = 3_600_000
MS_DAY = 86_400_000
_INT63 = (1 << 63) - 1


def stable_id(text: str, salt: str = "") -> int:
    """A positive int64 id for a string, identical across runs and machines (blake2b)."""
    h = hashlib.blake2b(f"{salt}\x1f{text}".encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(h, "little") & _INT63) or 1


def term_ids(tokens: Iterable[str]) -> list[int]:
    """Query term ids: tokens that are already integer ids (anonymised logs) are kept,
    other tokens get a stable hashed id."""
    out: list[int] = []
    for t in tokens:
        t = t.strip()
        if not t:
            continue
        out.append(int(t) if t.isdigit() and len(t) < 19 else stable_id(t, "term"))
    return out


def query_id_of(terms: Sequence[Any]) -> int:
    """A stable query id from its term sequence (0 for no query)."""
    if not terms:
        return 0
    return stable_id(" ".join(str(t) for t in terms), "query")


def time_fields(ts: np.ndarray, tz_offset_hours: float = 0.0) -> dict[str, np.ndarray]:
    """day (0 = first local day of the log), hour and weekday (0 = Monday) in local time."""
    local = np.asarray(ts, dtype=np.int64) + int(tz_offset_hours * MS_HOUR)
    days = np.floor_divide(local, MS_DAY)
    first = days.min() if days.size else 0
    return {
        "day": (days - first).astype(np.int32),
        "hour": (np.floor_divide(local, MS_HOUR) % 24).astype(np.int32),
        "weekday": ((days + 3) % 7).astype(np.int32),   # 1970-01-01 was a Thursday
    }


def global_labels(user: np.ndarray, item: np.ndarray, day: np.ndarray, click: np.ndarray,
                  order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """global_click / global_order: any click / order of the same user on the same item on
    the same day, in any scenario."""
    if user.size == 0:
        return np.zeros(0, np.int8), np.zeros(0, np.int8)
    key = np.stack([np.asarray(user, np.int64), np.asarray(item, np.int64), np.asarray(day, np.int64)], axis=1)
    _, inv = np.unique(key, axis=0, return_inverse=True)
    inv = inv.ravel()
    gc = np.bincount(inv, weights=np.asarray(click) > 0) > 0
    go = np.bincount(inv, weights=np.asarray(order) > 0) > 0
    return gc[inv].astype(np.int8), go[inv].astype(np.int8)


@dataclass
class HistoryLists:
    """Behaviour histories per impression row as list arrays (newest first)."""

    item: pa.Array
    cate2: pa.Array
    brand: pa.Array
    source: pa.Array
    action: pa.Array


def _list(values: np.ndarray, offsets: np.ndarray, field: str) -> pa.Array:
    t = IMPRESSION_SCHEMA.field(field).type
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(values, t.value_type))


def histories_from_lists(entries: Sequence[Sequence[tuple[int, int, int, int, int]]]) -> HistoryLists:
    """From per-row python lists of (item, cate2, brand, source, action), newest first."""
    lengths = np.array([min(len(e), HISTORY_LEN) for e in entries], dtype=np.int64)
    offsets = np.zeros(len(entries) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = [t for e in entries for t in list(e)[:HISTORY_LEN]]
    arr = np.array(flat, dtype=np.int64).reshape(-1, 5) if flat else np.zeros((0, 5), dtype=np.int64)
    return HistoryLists(
        item=_list(arr[:, 0], offsets, "hist_item_id"), cate2=_list(arr[:, 1], offsets, "hist_cate2"),
        brand=_list(arr[:, 2], offsets, "hist_brand"), source=_list(arr[:, 3].astype(np.int8), offsets, "hist_source"),
        action=_list(arr[:, 4].astype(np.int8), offsets, "hist_action"))


def histories_from_log(user: np.ndarray, request_ts: np.ndarray, ev_user: np.ndarray, ev_ts: np.ndarray,
                       ev_item: np.ndarray, ev_cate2: np.ndarray, ev_brand: np.ndarray,
                       ev_is_search: np.ndarray, ev_order: np.ndarray, length: int = HISTORY_LEN) -> HistoryLists:
    """For each impression (user, request_ts): the user's behaviours (the ``ev_*`` clicks)
    strictly before ``request_ts``, newest first, at most ``length``. Vectorised."""
    user = np.asarray(user, np.int64)
    request_ts = np.asarray(request_ts, np.int64)
    ev_user = np.asarray(ev_user, np.int64)
    ev_ts = np.asarray(ev_ts, np.int64)
    n = user.size
    # dense ranks make a single sortable int64 key (user, time)
    all_users, u_inv = np.unique(np.r_[ev_user, user], return_inverse=True)
    all_ts, t_inv = np.unique(np.r_[ev_ts, request_ts], return_inverse=True)
    del all_users, all_ts
    shift = np.int64(1 << 32)
    ev_key = u_inv[:ev_user.size].astype(np.int64) * shift + t_inv[:ev_ts.size]
    order = np.argsort(ev_key, kind="stable")
    ev_key = ev_key[order]
    q_user = u_inv[ev_user.size:].astype(np.int64)
    q_key = q_user * shift + t_inv[ev_ts.size:]
    end = np.searchsorted(ev_key, q_key, side="left")            # first event at or after the request
    start = np.searchsorted(ev_key, q_user * shift, side="left")  # the user's first event
    lengths = np.minimum(end - start, length)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    within = np.arange(total) - np.repeat(offsets[:-1], lengths)
    idx = order[np.repeat(end - 1, lengths) - within]            # newest first
    source = np.where(np.asarray(ev_is_search)[idx], SOURCE_SEARCH, SOURCE_REC).astype(np.int8)
    action = np.where(np.asarray(ev_order)[idx] > 0, ACTION_ORDER, ACTION_CLICK).astype(np.int8)
    return HistoryLists(
        item=_list(np.asarray(ev_item, np.int64)[idx], offsets, "hist_item_id"),
        cate2=_list(np.asarray(ev_cate2, np.int64)[idx], offsets, "hist_cate2"),
        brand=_list(np.asarray(ev_brand, np.int64)[idx], offsets, "hist_brand"),
        source=_list(source, offsets, "hist_source"), action=_list(action, offsets, "hist_action"))


def empty_histories(n: int) -> HistoryLists:
    return histories_from_lists([[] for _ in range(n)])


def positions_in_request(request_keys: np.ndarray) -> np.ndarray:
    """0-based position of each row among the rows of its request, in row order."""
    keys = np.asarray(request_keys)
    if keys.size == 0:
        return np.zeros(0, np.int32)
    _, inv = np.unique(keys, return_inverse=True)
    inv = inv.ravel()
    order = np.argsort(inv, kind="stable")
    sorted_inv = inv[order]
    starts = np.flatnonzero(np.r_[True, sorted_inv[1:] != sorted_inv[:-1]])
    sizes = np.diff(np.r_[starts, keys.size])
    pos = np.empty(keys.size, dtype=np.int32)
    pos[order] = np.arange(keys.size) - np.repeat(starts, sizes)
    return pos


def build_table(columns: dict[str, Any], hist: HistoryLists | None = None, sort: bool = True) -> pa.Table:
    """An IMPRESSION_SCHEMA table from the given columns; missing fields get their
    'unknown' value (0, "", empty list; NaN for p_click/p_ctcvr). Requires at least
    user_id, item_id, scenario, click. Sorted by ts (stable) unless ``sort`` is False."""
    n = len(columns["user_id"])
    scen = np.asarray(columns["scenario"], dtype=object)
    bad = set(np.unique(scen).tolist()) - set(SCENARIOS)
    if bad:
        raise ValueError(f"scenario must be one of {SCENARIOS}, got {sorted(map(str, bad))[:5]}")
    cols: dict[str, pa.Array] = {}
    for field in IMPRESSION_SCHEMA:
        name = field.name
        if name.startswith("hist_"):
            continue
        if name in columns and columns[name] is not None:
            value = columns[name]
            if pa.types.is_list(field.type):
                cols[name] = value if isinstance(value, pa.Array) else pa.array(list(value), field.type)
            else:
                cols[name] = pa.array(np.asarray(value) if not isinstance(value, (pa.Array, list)) else value,
                                      field.type)
        elif name in ("p_click", "p_ctcvr"):
            cols[name] = pa.array(np.full(n, np.nan, dtype=np.float32), field.type)
        elif pa.types.is_list(field.type):
            cols[name] = pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], field.type.value_type))
        elif pa.types.is_string(field.type):
            cols[name] = pa.array([""] * n, field.type)
        else:
            cols[name] = pa.array(np.zeros(n, dtype=field.type.to_pandas_dtype()), field.type)
    h = hist or empty_histories(n)
    cols.update({"hist_item_id": h.item, "hist_cate2": h.cate2, "hist_brand": h.brand,
                 "hist_source": h.source, "hist_action": h.action})
    table = pa.table({f.name: cols[f.name] for f in IMPRESSION_SCHEMA}, schema=IMPRESSION_SCHEMA)
    if sort and n:
        ts = table["ts"].to_numpy()
        if (np.diff(ts) < 0).any():
            table = table.take(pa.array(np.argsort(ts, kind="stable")))
    return table
