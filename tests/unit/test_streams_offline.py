"""The batch reference (streams.offline) against the simulator's own impression table:
equal wherever the table is derivable from the event log."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from streams import offline
from streams.catalog import Catalog, load_source
from streams.state import MS_DAY, StateConfig
from tests.unit.streams_harness import simulate_small
from usr.data.tables import ACTION_CLICK, ACTION_ORDER, IMPRESSION_SCHEMA

CFG = StateConfig()   # the stack's defaults: click window 30 min, order window 1 day, history 50


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory):
    d = simulate_small(tmp_path_factory.mktemp("sim"), users=400, items=800, days=3, seed=11)
    log = pq.read_table(d / "events.parquet").to_pandas()
    ref = offline.compute(log, load_source(d), CFG, partitions=4)
    sim = pq.read_table(d / "impressions.parquet")
    assert ref.rows.schema.equals(IMPRESSION_SCHEMA)
    got = ref.rows.to_pandas().set_index("event_id")
    want = sim.to_pandas().set_index("event_id").loc[got.index]
    assert len(got) == sim.num_rows
    return log, got, want


def test_impression_fields_and_scenario_labels_equal_the_simulator(tables) -> None:
    _, got, want = tables
    for col in ("request_id", "ts", "day", "user_id", "item_id", "scenario", "query", "query_id", "position", "hour",
                "weekday", "user_segment", "user_level", "cate1", "cate2", "brand", "price_bucket", "click", "order"):
        assert (got[col].to_numpy() == want[col].to_numpy()).all(), col
    assert all(list(a) == list(b) for a, b in zip(got["query_terms"], want["query_terms"]))
    assert got["click"].sum() > 100 and got["order"].sum() > 10


def test_histories_equal_the_simulator_where_the_log_holds_them(tables) -> None:
    """The simulator's history is a snapshot at the start of the session, with each click's
    final action, and reaches back before the log (warm-up days, prior behaviour). The
    stream's is as of the impression, with orders placed before it. So: drop the stream's
    clicks from the impression's own request; what remains must be a prefix of the
    simulator's list, with ORDER exactly where the order came before the impression."""
    log, got, want = tables
    clicks = log[log["event_type"] == "click"].sort_values(["user_id", "ts", "event_id"])
    orders = log[log["event_type"] == "order"]
    first_order = orders.groupby(["user_id", "request_id", "item_id"])["ts"].min()
    by_user = {u: g for u, g in clicks.groupby("user_id")}
    checked = entries = 0
    for eid, row in got.iterrows():
        g = by_user.get(row["user_id"])
        before = g[g["ts"] < row["ts"]].iloc[::-1].head(CFG.history_len) if g is not None else clicks.iloc[:0]
        assert list(before["item_id"]) == list(row["hist_item_id"]), eid
        own = int((before["request_id"] == row["request_id"]).sum())
        assert (before["request_id"].iloc[:own] == row["request_id"]).all(), eid   # own clicks are the newest
        rest = before.iloc[own:]
        k = len(rest)
        sim = want.loc[eid]
        for col in ("hist_item_id", "hist_cate2", "hist_brand", "hist_source"):
            assert list(row[col])[own:] == list(sim[col])[:k], (eid, col)
        order_ts = [first_order.get((row["user_id"], r, i)) for r, i in zip(rest["request_id"], rest["item_id"])]
        assert list(row["hist_action"])[own:] == [ACTION_ORDER if o is not None and o < row["ts"] else ACTION_CLICK
                                                  for o in order_ts], eid
        assert list(sim["hist_action"])[:k] == [ACTION_CLICK if o is None else ACTION_ORDER for o in order_ts], eid
        checked += 1
        entries += k
    assert checked == len(got) and entries > 1000


def test_global_labels_equal_the_simulator_where_the_definitions_agree(tables) -> None:
    """Simulator: any click (order) of the pair on the impression's day. Stream: any click
    in [t, t + click window] (order in [t, t + click + order window]). They must agree
    wherever no event of the pair falls in one window but not the other."""
    log, got, want = tables
    rows = got.reset_index()[["event_id", "user_id", "item_id", "ts"]]
    rows["day0"] = rows["ts"] // MS_DAY * MS_DAY
    for kind, label, width in (("click", "global_click", CFG.click_window_ms),
                               ("order", "global_order", CFG.click_window_ms + CFG.order_window_ms)):
        ev = log[log["event_type"] == kind][["user_id", "item_id", "ts"]].rename(columns={"ts": "ets"})
        m = rows.merge(ev, on=["user_id", "item_id"])
        same_day = (m["ets"] >= m["day0"]) & (m["ets"] < m["day0"] + MS_DAY)
        window = (m["ets"] >= m["ts"]) & (m["ets"] <= m["ts"] + width)
        ambiguous = set(m.loc[same_day != window, "event_id"])
        clear = ~got.index.isin(ambiguous)
        assert (got.loc[clear, label].to_numpy() == want.loc[clear, label].to_numpy()).all(), label
        assert clear.mean() > 0.9, (label, clear.mean())
        # and the stream's definition itself, recomputed here
        hit = set(m.loc[window, "event_id"])
        assert (got[label].to_numpy() == got.index.isin(hit).astype(np.int8)).all(), label
        assert got[label].sum() >= got["click" if kind == "click" else "order"].sum()


def test_final_user_features_are_the_last_clicks_and_windowed_counts(tables) -> None:
    log, _, _ = tables
    part = log.head(4000)
    ref = offline.compute(part, Catalog(), CFG, partitions=2)
    assert len(ref.users) > 50
    for uid, f in list(ref.users.items())[:60]:
        u = part[part["user_id"] == uid]
        clicks = u[u["event_type"] == "click"].sort_values(["ts", "event_id"], ascending=False).head(CFG.history_len)
        assert f["hist_item_id"] == list(clicks["item_id"]) and f["hist_ts"] == list(clicks["ts"])
        as_of = u["ts"].max()
        assert f["counts_as_of"] == as_of
        day = u[u["ts"] // 60_000 > as_of // 60_000 - 1440]
        assert f["counts_1d"][6] == int((day["event_type"] == "impression").sum())
        assert f["counts_1d"][7] == int((day["event_type"] == "click").sum())
        assert f["counts_1d"][6] == f["counts_1d"][0] + f["counts_1d"][3]
