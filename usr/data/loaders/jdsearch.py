"""JDsearch (Liu et al., SIGIR 2023) -> impression table.

Input: ``user_behavior_data_sample.txt``-style TSV with a header
``query, candidate_wid_list, candidate_label_list, history_qry_list, history_wid_list,
history_type_list, history_time_list`` and, optionally, the product meta TSV
(``wid, name, brand_id, brand_name, cate_id_1..4, cate_name_1..4, shop_id``).

Mapping (one record = one search request by one user):
- scenario "search"; query = the anonymised term ids joined by spaces; query_terms = those
  ids; query_id = a stable hash of them. request_id ``jd-<record>``, user_id = record
  number (1-based; the format has no user column).
- one impression per candidate, position = its index in ``candidate_wid_list``;
  click = label >= 1 (click, add-to-cart or purchase), order = label == 3 (purchase).
- global labels = scenario labels (the format has no other-scenario behaviour after the query).
- history = the record's own history, newest first (the file lists it oldest first):
  source SEARCH where ``history_qry != -1`` else REC (query-less interactions are
  browse/recommendation); action ORDER for ``ORD``, CLICK for CLICK/CART/FLW.
- items from the meta file: cate1 = cate_id_1, cate2 = cate_id_<cate2_level> (default 3,
  the leaf of JD's standard three-level tree), brand = brand_id; 0 where unknown.
- time: the format has only gaps between behaviours, no absolute time: ts, day, hour and
  weekday are 0. price, profile buckets: 0. p_click/p_ctcvr: NaN.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa

from usr.data.loaders.common import build_table, histories_from_lists, query_id_of, term_ids
from usr.data.tables import ACTION_CLICK, ACTION_ORDER, SOURCE_REC, SOURCE_SEARCH

TERM_SEP = "\x18"
LIST_SEP = "_"
_REQUIRED = ("query", "candidate_wid_list", "candidate_label_list", "history_qry_list",
             "history_wid_list", "history_type_list")


def _read_tsv(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def read_product_meta(path: str | Path, cate2_level: int = 3) -> dict[int, tuple[int, int, int]]:
    """wid -> (cate1, cate2, brand) from the product meta TSV."""
    meta: dict[int, tuple[int, int, int]] = {}
    for row in _read_tsv(Path(path)):
        def num(key: str) -> int:
            v = (row.get(key) or "").strip()
            return int(v) if v.lstrip("-").isdigit() and int(v) > 0 else 0
        meta[int(row["wid"])] = (num("cate_id_1"), num(f"cate_id_{cate2_level}"), num("brand_id"))
    return meta


def load_jdsearch(behavior_path: str | Path, meta_path: str | Path | None = None, cate2_level: int = 3) -> pa.Table:
    """Read a JDsearch behaviour file (+ optional product meta) into an IMPRESSION_SCHEMA table."""
    rows = _read_tsv(Path(behavior_path))
    if rows:
        missing = [c for c in _REQUIRED if c not in rows[0]]
        if missing:
            raise ValueError(f"{behavior_path}: not a JDsearch behaviour file, missing columns {missing}")
    meta = read_product_meta(meta_path, cate2_level) if meta_path else {}
    unknown = (0, 0, 0)

    cols: dict[str, list] = {k: [] for k in ("event_id", "request_id", "user_id", "item_id", "query", "query_id",
                                             "query_terms", "position", "cate1", "cate2", "brand", "click", "order")}
    hist_rows: list[list[tuple[int, int, int, int, int]]] = []
    for rec_no, row in enumerate(rows, start=1):
        terms = term_ids(row["query"].split(TERM_SEP))
        query = " ".join(str(t) for t in terms)
        qid = query_id_of(terms)
        cands = [int(w) for w in row["candidate_wid_list"].split(LIST_SEP) if w]
        labels = [float(x) for x in row["candidate_label_list"].split(LIST_SEP) if x]
        if len(cands) != len(labels):
            raise ValueError(f"record {rec_no}: {len(cands)} candidates but {len(labels)} labels")
        h_q = row["history_qry_list"].split(LIST_SEP) if row["history_qry_list"] else []
        h_w = row["history_wid_list"].split(LIST_SEP) if row["history_wid_list"] else []
        h_t = row["history_type_list"].split(LIST_SEP) if row["history_type_list"] else []
        if not (len(h_q) == len(h_w) == len(h_t)):
            raise ValueError(f"record {rec_no}: history lists differ in length ({len(h_q)}, {len(h_w)}, {len(h_t)})")
        history = []
        for q, w, t in zip(reversed(h_q), reversed(h_w), reversed(h_t)):   # newest first
            item = int(w)
            _, c2, b = meta.get(item, unknown)
            history.append((item, c2, b, SOURCE_REC if q.strip() == "-1" else SOURCE_SEARCH,
                            ACTION_ORDER if t.strip().upper() == "ORD" else ACTION_CLICK))
        request_id = f"jd-{rec_no}"
        for pos, (item, label) in enumerate(zip(cands, labels)):
            c1, c2, b = meta.get(item, unknown)
            cols["event_id"].append(f"{request_id}-{pos}")
            cols["request_id"].append(request_id)
            cols["user_id"].append(rec_no)
            cols["item_id"].append(item)
            cols["query"].append(query)
            cols["query_id"].append(qid)
            cols["query_terms"].append(terms)
            cols["position"].append(pos)
            cols["cate1"].append(c1)
            cols["cate2"].append(c2)
            cols["brand"].append(b)
            cols["click"].append(int(label >= 1.0))
            cols["order"].append(int(label >= 3.0))
            hist_rows.append(history)
    n = len(cols["user_id"])
    click = np.array(cols["click"], dtype=np.int8)
    order = np.array(cols["order"], dtype=np.int8)
    columns = {k: (np.array(v) if k not in ("query_terms", "event_id", "request_id", "query") else v)
               for k, v in cols.items()}
    columns.update({"scenario": ["search"] * n, "click": click, "order": order,
                    "global_click": click, "global_order": order})
    return build_table(columns, histories_from_lists(hist_rows))
