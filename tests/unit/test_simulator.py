"""The shop simulator: output contract, determinism, and the statistical properties
its ground truth promises (rates, funnel, global labels, position bias, signal)."""
from __future__ import annotations

import dataclasses as dc
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from usr.data.events import EVENT_LOG_SCHEMA, encode_event, validate_event
from usr.data.metrics import auc
from usr.data.sim.config import SimConfig
from usr.data.sim.generator import Simulator
from usr.data.sim.live import LiveShop
from usr.data.sim.run import simulate
from usr.data.tables import ACTION_ORDER, HISTORY_LEN, IMPRESSION_SCHEMA


def _small(**kw) -> SimConfig:
    cfg = SimConfig(n_users=2000, n_items=2000, days=3, seed=11)
    cfg = cfg.replace(history=dc.replace(cfg.history, warmup_days=2))
    return cfg.replace(**kw)


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    simulate(_small(), out, progress=False)
    return out


@pytest.fixture(scope="module")
def imps(sim_dir):
    return pq.read_table(sim_dir / "impressions.parquet").to_pandas()


@pytest.fixture(scope="module")
def events(sim_dir):
    return pq.read_table(sim_dir / "events.parquet").to_pandas()


@pytest.fixture(scope="module")
def stats(sim_dir):
    return json.loads((sim_dir / "stats.json").read_text())


# --- output contract ---------------------------------------------------------------

def test_output_files_and_schemas(sim_dir):
    for name in ("events.parquet", "impressions.parquet", "items.parquet", "users.parquet",
                 "sim_config.json", "stats.json", "world_state.npz"):
        assert (sim_dir / name).is_file(), name
    assert pq.read_schema(sim_dir / "impressions.parquet").equals(IMPRESSION_SCHEMA)
    assert pq.read_schema(sim_dir / "events.parquet").equals(EVENT_LOG_SCHEMA)
    cfg = SimConfig.from_dict(json.loads((sim_dir / "sim_config.json").read_text()))
    assert cfg == _small()


def test_logs_are_time_ordered_and_sized(imps, events, stats):
    assert len(imps) > 30_000
    assert (np.diff(imps.ts.values) >= 0).all()
    assert (np.diff(events.ts.values) >= 0).all()
    assert stats["impressions"] == len(imps)
    assert (events.event_type == "impression").sum() == len(imps)
    assert (events.event_type == "click").sum() == imps.click.sum()
    assert (events.event_type == "order").sum() == imps.order.sum()
    assert set(imps.day) == {0, 1, 2}


def test_event_log_rows_are_valid_events(events):
    sample = events.sample(2000, random_state=0)
    for row in sample.to_dict("records"):
        ev = validate_event({k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()})
        assert validate_event(encode_event(ev)) == ev


def test_fields_consistent_with_scenario(imps, sim_dir):
    s = imps[imps.scenario == "search"]
    r = imps[imps.scenario == "rec"]
    assert (s["query"].str.len() > 0).all() and (s.query_id > 0).all() and (s.query_terms.map(len) > 0).all()
    assert (r["query"] == "").all() and (r.query_id == 0).all() and (r.query_terms.map(len) == 0).all()
    items = pq.read_table(sim_dir / "items.parquet").to_pandas().set_index("item_id")
    j = imps.join(items[["cate2", "brand", "price_bucket"]], on="item_id", rsuffix="_cat")
    assert (j.cate2 == j.cate2_cat).all() and (j.brand == j.brand_cat).all()
    assert imps.price_bucket.between(1, 10).all()
    assert imps.hour.between(0, 23).all() and imps.weekday.between(0, 6).all()
    assert imps.hist_item_id.map(len).max() <= HISTORY_LEN
    assert (imps.hist_item_id.map(len) == imps.hist_action.map(len)).all()


def test_history_is_point_in_time(imps, events):
    """The newest history entries are exactly the user's clicks before the request,
    newest first, with ORDER where the click led to an order."""
    clicks = events[events.event_type == "click"]
    orders = set(zip(*(events.loc[events.event_type == "order", c] for c in ("request_id", "item_id"))))
    req_ts = imps.groupby("request_id").ts.transform("min")
    for r in np.random.default_rng(0).choice(len(imps), 150, replace=False):
        row = imps.iloc[r]
        c = clicks[(clicks.user_id == row.user_id) & (clicks.ts < req_ts.iloc[r])].sort_values("ts", ascending=False)
        k = min(len(c), HISTORY_LEN)
        assert list(row.hist_item_id[:k]) == list(c.item_id.values[:k])
        acts = [ACTION_ORDER if (q, i) in orders else 1 for q, i in zip(c.request_id.values[:k], c.item_id.values[:k])]
        assert list(row.hist_action[:k]) == acts
        src = [1 if s == "search" else 2 for s in c.scenario.values[:k]]
        assert list(row.hist_source[:k]) == src


# --- determinism ---------------------------------------------------------------------

def test_same_seed_same_output_other_seed_differs(tmp_path):
    cfg = SimConfig(n_users=300, n_items=500, days=2, seed=5)
    cfg = cfg.replace(history=dc.replace(cfg.history, warmup_days=1))
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    simulate(cfg, a, progress=False)
    simulate(cfg, b, progress=False)
    simulate(cfg.replace(seed=6), c, progress=False)
    for name in ("impressions.parquet", "events.parquet", "items.parquet", "users.parquet"):
        assert pq.read_table(a / name).equals(pq.read_table(b / name)), name
    assert not pq.read_table(a / "impressions.parquet").equals(pq.read_table(c / "impressions.parquet"))


# --- statistics ------------------------------------------------------------------------

def test_rates_per_scenario_in_configured_range(stats, imps):
    s, r = stats["scenarios"]["search"], stats["scenarios"]["rec"]
    assert 0.08 <= s["ctr"] <= 0.16, s["ctr"]
    assert 0.03 <= r["ctr"] <= 0.065, r["ctr"]
    assert s["ctr"] > r["ctr"]
    assert 0.10 <= s["cvr"] <= 0.30 and 0.08 <= r["cvr"] <= 0.25, (s["cvr"], r["cvr"])
    # stats agree with the table
    assert s["ctr"] == pytest.approx(imps.loc[imps.scenario == "search", "click"].mean())


def test_funnel_and_global_label_implications(imps, stats):
    assert not ((imps.order == 1) & (imps.click == 0)).any()
    assert not ((imps.click == 1) & (imps.global_click == 0)).any()
    assert not ((imps.order == 1) & (imps.global_order == 0)).any()
    assert not ((imps.global_order == 1) & (imps.global_click == 0)).any()
    assert (imps.p_ctcvr <= imps.p_click + 1e-7).all()
    assert ((imps.p_click > 0) & (imps.p_click < 1)).all()
    assert stats["order_implies_click"] is True


def test_global_labels_recomputed_from_the_table(imps):
    g = imps.groupby(["day", "user_id", "item_id"])
    assert (g.click.transform("max") == imps.global_click).all()
    assert (g.order.transform("max") == imps.global_order).all()


def test_cross_scenario_repeats_are_measurable(imps, stats):
    both = imps.groupby(["day", "user_id", "item_id"]).scenario.transform("nunique") == 2
    assert both.mean() > 0.005
    g_only = (imps.global_click == 1) & (imps.click == 0)
    assert g_only.mean() > 0.005
    assert stats["global_only_click_share"] == pytest.approx(g_only.mean())
    # some global-only positives come from a click in the *other* scenario
    assert (g_only & both).sum() > 20
    assert stats["global_only_from_other_scenario_share"] > 0.05


def test_position_bias_visible_under_a_random_logging_policy(tmp_path):
    """With a random production ranker, attractiveness does not depend on position, so a
    falling CTR by position is position bias alone."""
    cfg = _small(days=2, seed=3)
    cfg = cfg.replace(policy=dc.replace(cfg.policy, skill=0.0))
    st = simulate(cfg, tmp_path / "rand", progress=False)
    df = pq.read_table(tmp_path / "rand" / "impressions.parquet", columns=["scenario", "position", "click", "p_click"]).to_pandas()
    for scen in ("search", "rec"):
        d = df[df.scenario == scen]
        top = d[d.position <= 1].click.mean()
        deep = d[d.position.between(8, 11)].click.mean()
        assert top > 1.8 * deep, (scen, top, deep)
        by_pos = d.groupby("position").p_click.mean().values[:10]
        assert (np.diff(by_pos) < 0).all()
    assert st["scenarios"]["search"]["ctr_by_position"][0] > st["scenarios"]["search"]["ctr_by_position"][9]


def test_oracle_auc_in_stats_matches_and_is_informative(imps, stats):
    for scen in ("search", "rec"):
        d = imps[imps.scenario == scen]
        a_ctr = auc(d.click.values, d.p_click.values)
        a_ctcvr = auc((d.click * d.order).values, d.p_ctcvr.values)
        assert stats["oracle_auc"][f"{scen}_ctr"] == pytest.approx(a_ctr)
        assert stats["oracle_auc"][f"{scen}_ctcvr"] == pytest.approx(a_ctcvr)
        assert 0.7 < a_ctr < 0.99 and 0.7 < a_ctcvr < 0.995


def test_clicks_follow_intent_taste_and_recent_behaviour(imps, sim_dir):
    items = pq.read_table(sim_dir / "items.parquet").to_pandas().set_index("item_id")
    s = imps[imps.scenario == "search"].join(items[["cate2_name"]], on="item_id")
    match = np.array([n in q.split() for n, q in zip(s.cate2_name, s["query"])])
    assert s.click[match].mean() > 2 * s.click[~match].mean()
    r = imps[imps.scenario == "rec"]
    recent = np.array([c in set(h[:10]) for c, h in zip(r.cate2, r.hist_cate2)])
    assert r.click[recent].mean() > 1.3 * r.click[~recent].mean()


def test_drift_changes_tastes_popularity_and_needs():
    sim = Simulator(SimConfig(n_users=200, n_items=500, days=1, seed=2))
    st = sim.world.state
    taste, pop, need = st.taste_dev.copy(), st.pop_dev.copy(), st.need.copy()
    sim.world.advance_day(np.random.default_rng(0))
    assert not np.allclose(taste, st.taste_dev) and not np.allclose(pop, st.pop_dev)
    assert (st.need >= need - 1e-6).all() and (st.need > need).any()
    assert np.corrcoef(taste.ravel(), st.taste_dev.ravel())[0, 1] > 0.5   # drift, not a redraw


# --- live shoppers ---------------------------------------------------------------------

def test_live_shop_requests_and_responses(sim_dir):
    shop = LiveShop.from_dir(sim_dir, seed=4)
    seen = set()
    for _ in range(40):
        req = shop.request()
        seen.add(req["scenario"])
        assert 50 <= len(req["candidates"]) <= 200 and len(set(req["candidates"])) == len(req["candidates"])
        assert (req["scenario"] == "search") == bool(req["query"])
        evs = shop.respond(req, req["candidates"])
        assert [e.ts for e in evs] == sorted(e.ts for e in evs)
        clicked = {e.item_id for e in evs if e.event_type == "click"}
        assert {e.item_id for e in evs if e.event_type == "order"} <= clicked
        for e in evs:
            assert validate_event(encode_event(e)) == e
            assert e.request_id == req["request_id"] and e.user_id == req["user_id"]
        imp_pos = [e.position for e in evs if e.event_type == "impression"]
        assert imp_pos == list(range(len(imp_pos)))
    assert seen == {"search", "rec"}
    with pytest.raises(ValueError):
        shop.respond(req, req["candidates"])          # already answered
    req = shop.request(user_id=1, scenario="rec")
    with pytest.raises(ValueError):
        shop.respond(req, [10 ** 9])                   # not a candidate


def test_live_shop_rewards_better_rankings_and_is_deterministic(sim_dir):
    shop = LiveShop.from_dir(sim_dir, seed=7)
    oracle = random = 0.0
    for _ in range(60):
        req = shop.request()
        scores = np.array(shop.oracle_scores(req)["p_click"])
        cands = np.array(req["candidates"])
        oracle += shop.expected(req, cands[np.argsort(-scores)])["expected_clicks"]
        random += shop.expected(req, cands)["expected_clicks"]
        shop.respond(req, cands)
    assert oracle > 1.5 * random
    a, b = LiveShop.from_dir(sim_dir, seed=9), LiveShop.from_dir(sim_dir, seed=9)
    for _ in range(5):
        ra, rb = a.request(), b.request()
        assert ra == rb
        assert a.respond(ra, ra["candidates"]) == b.respond(rb, rb["candidates"])


def test_cli_simulate_writes_the_directory(tmp_path, capsys):
    from usr.cli import main
    rc = main(["simulate", "--out", str(tmp_path / "o"), "--days", "1", "--users", "200", "--items", "400",
               "--seed", "1", "--no-progress"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["impressions"] == pq.read_metadata(tmp_path / "o" / "impressions.parquet").num_rows > 0
    assert set(summary["oracle_auc"]) == {"search_ctr", "search_ctcvr", "rec_ctr", "rec_ctcvr"}


def test_cli_sim_config_file_and_overrides(tmp_path, capsys):
    from usr.cli import main
    cfg = SimConfig(n_users=150, n_items=300, days=1, seed=4)
    cfg = cfg.replace(history=dc.replace(cfg.history, warmup_days=0), policy=dc.replace(cfg.policy, skill=0.0))
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert main(["simulate", "--out", str(tmp_path / "o"), "--sim-config", str(path), "--seed", "9", "--no-progress"]) == 0
    written = SimConfig.from_dict(json.loads((tmp_path / "o" / "sim_config.json").read_text()))
    assert written == cfg.replace(seed=9)
    capsys.readouterr()
    assert main(["simulate", "--out", str(tmp_path / "p"), "--users", "0"]) == 2
