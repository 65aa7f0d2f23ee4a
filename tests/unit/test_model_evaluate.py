"""Metrics per scenario and task, oracle AUC, RelaImpr."""
import math

import numpy as np
import torch

from model.evaluate import metrics_from_predictions, oracle_metrics, predict, rela_impr


def _pred(n=400, seed=0):
    rng = np.random.default_rng(seed)
    p_click = rng.uniform(0.01, 0.6, n)
    click = (rng.random(n) < p_click).astype(np.float32)
    p_ctcvr = p_click * rng.uniform(0.1, 0.5, n)
    ctcvr = (click * (rng.random(n) < p_ctcvr / p_click)).astype(np.float32)
    return {"scenario": rng.integers(0, 2, n), "ctr": p_click + rng.normal(0, 0.2, n).clip(-0.009, 0.3),
            "ctcvr": p_ctcvr, "click": click, "ctcvr_label": ctcvr, "user_id": rng.integers(0, 20, n),
            "p_click": p_click.astype(np.float32), "p_ctcvr": p_ctcvr.astype(np.float32)}


def test_metrics_per_task_and_oracle_is_the_ceiling():
    pred = _pred()
    m = metrics_from_predictions(pred)
    for task in ("search_ctr", "search_ctcvr", "rec_ctr", "rec_ctcvr"):
        assert 0.5 < m[f"{task}_auc"] <= 1.0
        assert 0 < m[f"{task}_logloss"] < 2
        assert not math.isnan(m[f"{task}_gauc"])
    o = oracle_metrics(pred)
    assert o["oracle_search_ctr_auc"] > m["search_ctr_auc"]      # noisy scores cannot beat the truth here
    assert m["search_ctcvr_auc"] == o["oracle_search_ctcvr_auc"]  # same scores -> same AUC
    scores_only_rec = {**pred, "scenario": np.ones_like(pred["scenario"])}
    assert math.isnan(metrics_from_predictions(scores_only_rec)["search_ctr_auc"])


def test_oracle_is_empty_without_truth():
    pred = _pred()
    pred["p_click"] = np.full_like(pred["p_click"], np.nan)
    assert oracle_metrics(pred) == {}


def test_rela_impr():
    assert abs(rela_impr(0.75, 0.7) - 0.25) < 1e-12
    assert rela_impr(0.7, 0.7) == 0.0
    assert rela_impr(0.65, 0.7) < 0


def test_predict_collects_batches_in_eval_mode():
    class Probe(torch.nn.Module):
        def forward(self, scenario, **_):
            assert not self.training
            p = torch.full(scenario.shape, 0.3)
            return {"ctr": p, "ctcvr": p / 2}

    labels = {k: torch.zeros(3) for k in ("click", "ctcvr", "p_click", "p_ctcvr")}
    labels["user_id"] = torch.arange(3)
    model = Probe().train()
    pred = predict(model, [({"scenario": torch.tensor([0, 1, 0])}, labels)] * 2)
    assert model.training and len(pred["ctr"]) == 6 and np.allclose(pred["ctcvr"], 0.15)
