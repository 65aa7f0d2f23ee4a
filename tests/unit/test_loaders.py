"""Real-log loaders: the real samples in shared/data, the KuaiSAR fixture written from
the published schema, and the generic format."""
from __future__ import annotations

import csv
import dataclasses as dc
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from usr.data.loaders import load_aliexpress, load_generic, load_jdsearch, load_kuaisar
from usr.data.tables import ACTION_CLICK, ACTION_ORDER, HISTORY_LEN, IMPRESSION_SCHEMA, SOURCE_REC, SOURCE_SEARCH

ROOT = Path(__file__).resolve().parents[2]


def _shared_data() -> Path:
    """The real samples (licensed CC BY-NC-SA, so not copied into this repository):
    $USR_SHARED_DATA, else ../shared/data beside the checkout, else /work/shared/data."""
    candidates = [Path(os.environ["USR_SHARED_DATA"])] if os.environ.get("USR_SHARED_DATA") else []
    candidates += [ROOT.parent / "shared" / "data", Path("/work/shared/data")]
    return next((c for c in candidates if c.is_dir()), candidates[0])


SHARED = _shared_data()
JD = SHARED / "jdsearch_sample"
AE = SHARED / "aliexpress_sample"
KUAISAR = ROOT / "tests" / "fixtures" / "kuaisar"

needs_samples = pytest.mark.skipif(not JD.is_dir() or not AE.is_dir(), reason="shared/data samples not present")


def _check_contract(table):
    assert table.schema.equals(IMPRESSION_SCHEMA)
    df = table.to_pandas()
    assert (np.diff(df.ts.values) >= 0).all()
    assert not ((df.order == 1) & (df.click == 0)).any()
    assert not ((df.click == 1) & (df.global_click == 0)).any()
    assert df.event_id.is_unique
    assert df.p_click.isna().all() and df.p_ctcvr.isna().all()
    assert (df.hist_item_id.map(len) <= HISTORY_LEN).all()
    return df


# --- JDsearch ------------------------------------------------------------------------

@needs_samples
def test_jdsearch_sample():
    table = load_jdsearch(JD / "user_behavior_data_sample.txt", JD / "product_meta_data_sample.txt")
    df = _check_contract(table)
    assert len(df) == 262 and df.request_id.nunique() == 3
    assert df.click.sum() == 5 and df.order.sum() == 0          # README: 5 clicks, no purchases
    assert (df.scenario == "search").all() and (df["query"].str.len() > 0).all()
    assert (df.cate1 > 0).all() and (df.brand > 0).all()         # all candidates have metadata

    csv.field_size_limit(1 << 30)
    with open(JD / "user_behavior_data_sample.txt", newline="") as f:
        rec = next(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    first = df[df.request_id == "jd-1"].sort_values("position")
    assert first.item_id.tolist() == [int(w) for w in rec["candidate_wid_list"].split("_")]
    assert first.click.tolist() == [int(float(x) >= 1) for x in rec["candidate_label_list"].split("_")]
    assert first.query_terms.iloc[0].tolist() == [int(t) for t in rec["query"].split("\x18")]
    # history: newest first, capped, sources from the query list, ORD -> ORDER
    wids = rec["history_wid_list"].split("_")[::-1][:HISTORY_LEN]
    qrys = rec["history_qry_list"].split("_")[::-1][:HISTORY_LEN]
    types = rec["history_type_list"].split("_")[::-1][:HISTORY_LEN]
    row = first.iloc[0]
    assert row.hist_item_id.tolist() == [int(w) for w in wids]
    assert row.hist_source.tolist() == [SOURCE_REC if q == "-1" else SOURCE_SEARCH for q in qrys]
    assert row.hist_action.tolist() == [ACTION_ORDER if t == "ORD" else ACTION_CLICK for t in types]
    assert set(row.hist_source.tolist()) == {SOURCE_SEARCH, SOURCE_REC}
    assert (row.hist_cate2 > 0).sum() > 0


def test_jdsearch_rejects_other_files(tmp_path):
    p = tmp_path / "x.tsv"
    p.write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="JDsearch"):
        load_jdsearch(p)


# --- AliExpress ------------------------------------------------------------------------

@needs_samples
def test_aliexpress_us_sample_train_then_test():
    table = load_aliexpress([AE / "aliexpress_us_train_sample.csv", AE / "aliexpress_us_test_sample.csv"], country="us")
    df = _check_contract(table)
    assert len(df) == 120 and df.request_id.nunique() == 41 + 10
    assert df.click.sum() == 70 and df.order.sum() == 4            # README table
    assert (df[df.day == 0].shape[0], df[df.day == 1].shape[0]) == (100, 20)
    assert (df.scenario == "search").all()
    assert (df.groupby("request_id").query_id.nunique() == 1).all()
    pos = df.groupby("request_id").position.apply(lambda s: sorted(s.tolist()))
    assert all(p == list(range(len(p))) for p in pos)


@needs_samples
def test_aliexpress_fuxictr_sample():
    df = _check_contract(load_aliexpress(AE / "fuxictr_tiny_mtl_train.csv"))
    assert len(df) == 100 and df.click.sum() == 3 and df.order.sum() == 2


def test_aliexpress_rejects_other_files(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="AliExpress"):
        load_aliexpress(p)


# --- KuaiSAR ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ks():
    return _check_contract(load_kuaisar(KUAISAR))


def _row(df, user, item, scenario):
    r = df[(df.user_id == user) & (df.item_id == item) & (df.scenario == scenario)]
    assert len(r) == 1
    return r.iloc[0]


def test_kuaisar_rows_and_fields(ks):
    assert len(ks) == 8 + 4                       # the USER-type search result is dropped
    assert 90001 not in set(ks.item_id)
    s = _row(ks, 1, 102, "search")
    assert s["query"] == "20 34" and s.query_terms.tolist() == [20, 34] and s.query_id > 0
    assert s.hour == 9 and s.day == 0            # Beijing time
    assert (s.cate1, s.cate2, s.brand) == (9, 137, 11)
    assert (s.user_segment, s.user_level) == (1 + 1 * 8 + 3, 3)
    r = _row(ks, 1, 106, "rec")
    assert (r.cate1, r.cate2, r.brand, r.day) == (0, 0, 0, 1)
    assert (ks[ks.scenario == "rec"]["query"] == "").all()
    assert ks.groupby("request_id").size().to_dict()["ks-s7001"] == 2


def test_kuaisar_labels_order_analogue_and_global(ks):
    liked = _row(ks, 1, 101, "rec")
    assert (liked.click, liked.order) == (1, 1)   # like counts as the order analogue
    assert _row(ks, 2, 102, "rec").order == 1     # forward
    assert (ks[ks.scenario == "search"].order == 0).all()
    feed_102 = _row(ks, 1, 102, "rec")            # skipped in the feed, clicked in search the same day
    assert (feed_102.click, feed_102.global_click) == (0, 1)
    assert _row(ks, 1, 104, "search").global_click == 0   # clicked in the feed, but the next day
    assert _row(ks, 2, 102, "search").global_click == 1   # clicked in the feed an hour later


def test_kuaisar_histories_from_the_log(ks):
    assert _row(ks, 1, 101, "rec").hist_item_id.tolist() == []
    s = _row(ks, 1, 104, "search")
    assert s.hist_item_id.tolist() == [101]
    assert s.hist_source.tolist() == [SOURCE_REC] and s.hist_action.tolist() == [ACTION_ORDER]
    r = _row(ks, 1, 106, "rec")
    assert r.hist_item_id.tolist() == [102, 101]
    assert r.hist_source.tolist() == [SOURCE_SEARCH, SOURCE_REC]
    assert r.hist_action.tolist() == [ACTION_CLICK, ACTION_ORDER]
    assert r.hist_cate2.tolist() == [137, 136] and r.hist_brand.tolist() == [11, 10]


# --- generic ---------------------------------------------------------------------------

def _generic_frame():
    return pd.DataFrame({
        "user": [1, 1, 1, 1, 2, 1],
        "item": [10, 11, 10, 12, 10, 13],
        "scenario": ["rec", "rec", "search", "S", "r", "recommendation"],
        "timestamp": ["2024-03-04T08:00:00Z", "2024-03-04T08:00:00Z", "2024-03-04T09:00:00Z",
                      "2024-03-04T09:00:00Z", "2024-03-04T10:00:00Z", "2024-03-05T07:00:00Z"],
        "click": [0, 1, 1, 0, 1, 0],
        "order": [0, 1, 1, 1, 0, 0],
        "query": ["", "", "red apples", "red apples", "", ""],
    })


@pytest.mark.parametrize("fmt", ["csv", "parquet", "frame"])
def test_generic_log(tmp_path, fmt):
    frame = _generic_frame()
    if fmt == "csv":
        src = tmp_path / "log.csv"
        frame.to_csv(src, index=False)
    elif fmt == "parquet":
        src = tmp_path / "log.parquet"
        frame.to_parquet(src)
    else:
        src = frame
    df = _check_contract(load_generic(src))
    assert len(df) == 6
    assert df.scenario.tolist() == ["rec", "rec", "search", "search", "rec", "rec"]
    assert df.day.tolist() == [0, 0, 0, 0, 0, 1] and df.hour.tolist()[:3] == [8, 8, 9]
    assert df.ts.iloc[0] == 1_709_539_200_000
    assert df.order.tolist() == [0, 1, 1, 0, 0, 0]          # an order needs a click
    # item 10 of user 1: skipped in the feed, clicked in search on the same day
    assert (df.click.iloc[0], df.global_click.iloc[0]) == (0, 1)
    # one request per (user, scenario, query, ts); positions in row order
    assert df.request_id.nunique() == 4 and df.position.tolist()[:4] == [0, 1, 0, 1]
    s = df.iloc[2]
    assert s["query"] == "red apples" and len(s.query_terms) == 2 and s.query_id == df.iloc[3].query_id
    assert s.hist_item_id.tolist() == [11] and s.hist_action.tolist() == [ACTION_ORDER]
    last = df.iloc[5]
    assert last.hist_item_id.tolist() == [10, 11]
    assert last.hist_source.tolist() == [SOURCE_SEARCH, SOURCE_REC]
    assert df.iloc[4].hist_item_id.tolist() == []            # user 2 has no earlier clicks


def test_generic_errors_name_the_problem(tmp_path):
    frame = _generic_frame().drop(columns=["click"])
    with pytest.raises(ValueError, match="click"):
        load_generic(frame)
    frame = _generic_frame()
    frame.loc[0, "scenario"] = "feed"
    with pytest.raises(ValueError, match="feed"):
        load_generic(frame)


def test_generic_reproduces_simulator_global_labels(tmp_path):
    from usr.data.sim.config import SimConfig
    from usr.data.sim.run import simulate
    cfg = SimConfig(n_users=300, n_items=500, days=2, seed=3)
    cfg = cfg.replace(history=dc.replace(cfg.history, warmup_days=1))
    simulate(cfg, tmp_path, progress=False)
    sim = pq.read_table(tmp_path / "impressions.parquet").to_pandas()
    log = sim[["user_id", "item_id", "scenario", "ts", "click", "order", "query", "request_id", "position"]]
    got = load_generic(log).to_pandas()
    assert (got.event_id.str.len() > 0).all()
    assert got.global_click.tolist() == sim.global_click.tolist()
    assert got.global_order.tolist() == sim.global_order.tolist()
    assert got.day.tolist() == sim.day.tolist() and got.hour.tolist() == sim.hour.tolist()
    # histories built from the log are the newest part of the simulator's
    # (which also holds behaviour from before the log started)
    for i in np.random.default_rng(0).choice(len(sim), 100, replace=False):
        g, s = got.hist_item_id.iloc[i].tolist(), sim.hist_item_id.iloc[i].tolist()
        assert g == s[:len(g)]


def test_cli_load(tmp_path, capsys):
    from usr.cli import main
    out = tmp_path / "ks.parquet"
    assert main(["load", "kuaisar", str(KUAISAR), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == pq.read_metadata(out).num_rows == 12
    assert math.isclose(summary["scenarios"]["rec"]["ctr"], 0.5)
    assert main(["load", "generic", str(tmp_path / "missing.csv"), "--out", str(out)]) == 2
