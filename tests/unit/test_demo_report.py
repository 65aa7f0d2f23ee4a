"""The demo's A/B statistics and report, without services."""
from __future__ import annotations

import numpy as np

from usr.demo.live import LiveRecord, ab_summary, arm_of, rate_ci
from usr.demo.report import SECTIONS, write_report


def _records(n: int, seed: int = 0) -> list[LiveRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        arm = arm_of(k + 1, ["A", "B"])
        shown = int(rng.integers(5, 20))
        p = 0.05 if arm == "A" else 0.10
        clicks = int(rng.binomial(shown, p))
        out.append(LiveRecord(wall_s=k * 0.1, event_ts=1_700_000_000_000 + k * 60_000, arm=arm,
                              model_version="1" if k < n // 2 else "2", fallback=False, latency_ms=10 + k % 7,
                              scenario="rec", shown=shown, clicks=clicks, orders=int(rng.binomial(clicks, 0.2)),
                              expected_clicks=shown * p, expected_orders=shown * p * 0.2, user_id=k % 300 + 1,
                              counterfactual={"A": [shown * 0.05, shown * 0.01], "B": [shown * 0.06, shown * 0.011]}))
    return out


def test_arms_are_stable_and_balanced() -> None:
    arms = [arm_of(u, ["A", "B"]) for u in range(1, 5001)]
    assert arms == [arm_of(u, ["A", "B"]) for u in range(1, 5001)]
    assert 0.45 < arms.count("A") / len(arms) < 0.55


def test_rate_ci_covers_the_truth_and_shrinks_with_data() -> None:
    rng = np.random.default_rng(1)
    trials = rng.integers(5, 20, 2000)
    rate, lo, hi = rate_ci(rng.binomial(trials, 0.07), trials)
    assert lo < 0.07 < hi and abs(rate - 0.07) < 0.01
    _, lo_small, hi_small = rate_ci(rng.binomial(trials[:100], 0.07), trials[:100])
    assert hi_small - lo_small > hi - lo


def test_ab_summary_finds_the_better_arm() -> None:
    ab = ab_summary(_records(3000))
    assert ab["B"]["ctr"]["ci95"][0] > ab["A"]["ctr"]["ci95"][1]  # B (10%) beats A (5%) clearly
    assert 0.7 < ab["lift"]["expected_ctr"] < 1.3
    paired = ab["paired"]["clicks"]  # the counterfactual says B's ranking earns 20% more clicks
    assert abs(paired["lift"] - 0.2) < 1e-9 and paired["ci95"][0] - 1e-9 <= 0.2 <= paired["ci95"][1] + 1e-9


def test_clustering_by_user_widens_the_interval() -> None:
    rng = np.random.default_rng(2)
    users = np.repeat(np.arange(50), 40)              # 50 users, 40 requests each
    user_rate = rng.uniform(0.01, 0.2, 50)[users]     # users differ a lot
    trials = np.full(len(users), 10)
    successes = rng.binomial(trials, user_rate)
    _, lo_req, hi_req = rate_ci(successes, trials)
    _, lo_user, hi_user = rate_ci(successes, trials, users)
    assert hi_user - lo_user > 2 * (hi_req - lo_req)


def test_report_has_every_section_and_chart(tmp_path) -> None:
    records = _records(400)
    offline = {"MMoE (arm A)": {"search_ctr_auc": 0.7, "rec_ctr_auc": 0.72, "mean_auc": 0.71}}
    report = write_report(tmp_path, preset={"name": "test"}, phases={"total": 1.0}, offline=offline,
                          oracle={"oracle_rec_ctr_auc": 0.85}, records=records, freshness_ms=[100.0, 200.0],
                          freshness_timeouts=0, retrains={"usr": [{"version": 1, "parent": None, "decision": "promoted",
                                                                   "reason": "first", "data_window": {}}]},
                          stream_stats={}, arms={"A": "usr_base", "B": "usr"})
    text = report.read_text()
    assert all(f"## {s}" in text for s in SECTIONS)
    assert "| usr | 1 | – | promoted | first |" in text and "| oracle |" in text and "Paired comparison" in text
    for png in ("online_ctr_ctcvr.png", "gateway_latency.png", "feature_freshness.png", "offline_auc.png"):
        assert (tmp_path / png).stat().st_size > 5000
