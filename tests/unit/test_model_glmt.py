"""Output heads: ESMM and GLMT (global label space multi-task)."""
import torch

from tests.unit.conftest_model import assert_script_matches
from model.layers.glmt import ESMMHead, GLMTHead, pick_slot
from model.losses import ranking_loss
from model.configs import ModelConfig


def test_pick_slot():
    values = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    torch.testing.assert_close(pick_slot(values, torch.tensor([2, 0])), torch.stack([values[0, 2], values[1, 0]]))


def test_glmt_keeps_ctcvr_below_ctr_below_global_ctr_in_both_forms():
    torch.manual_seed(8)
    for tie in (False, True):
        head = GLMTHead(6, tie_ctcvr_to_global=tie)
        with torch.no_grad():
            for p in head.parameters():
                p.normal_(0, 3.0)
        reps = torch.randn(500, 3, 6) * 3
        out = head(reps, torch.randint(0, 2, (500,)))
        assert (out["ctcvr"] <= out["ctr"]).all()
        assert (out["ctr"] <= out["gctr"]).all()
        assert (out["gctcvr"] <= out["gctr"]).all()
        assert all(v.shape == (500,) for v in out.values())


def test_glmt_main_head_uses_the_samples_scenario_slot_and_global_uses_slot_2():
    torch.manual_seed(9)
    head = GLMTHead(4)
    reps = torch.randn(2, 3, 4)
    a = head(reps, torch.tensor([0, 0]))
    changed = reps.clone()
    changed[:, 1] += 10.0                     # the R slot: irrelevant for search samples
    b = head(changed, torch.tensor([0, 0]))
    torch.testing.assert_close(a["ctr"], b["ctr"])
    changed[:, 2] += 10.0                     # the G slot changes p_gctr and so p_ctr
    c = head(changed, torch.tensor([0, 0]))
    assert not torch.allclose(a["gctr"], c["gctr"]) and not torch.allclose(a["ctr"], c["ctr"])


def test_esmm_head():
    head = ESMMHead(4, 2)
    out = head(torch.randn(50, 2, 4), torch.randint(0, 2, (50,)))
    assert set(out) == {"ctr", "ctcvr"} and (out["ctcvr"] <= out["ctr"]).all()


def test_loss_adds_global_and_contrastive_terms():
    cfg = ModelConfig(global_weight=0.5, cl_weight=0.1)
    labels = {"click": torch.tensor([1.0, 0.0]), "ctcvr": torch.tensor([1.0, 0.0]),
              "global_click": torch.tensor([1.0, 1.0]), "global_ctcvr": torch.tensor([1.0, 0.0])}
    p = torch.tensor([0.7, 0.2])
    plain, _ = ranking_loss({"ctr": p, "ctcvr": p * 0.5}, labels, cfg)
    full, parts = ranking_loss({"ctr": p, "ctcvr": p * 0.5, "gctr": p, "gctcvr": p * 0.5,
                                "cl_loss": torch.tensor(2.0)}, labels, cfg)
    torch.testing.assert_close(full, plain + 0.5 * (torch.tensor(parts["gctr"]) + parts["gctcvr"]) + 0.2, atol=1e-5, rtol=0)


def test_script_matches_eager():
    reps, scen = torch.randn(6, 3, 4), torch.tensor([0, 1, 0, 1, 1, 0])
    assert_script_matches(GLMTHead(4), reps, scen)
    assert_script_matches(GLMTHead(4, tie_ctcvr_to_global=True), reps, scen)
    assert_script_matches(ESMMHead(4, 2), reps[:, :2], scen)
