"""Every variant (6 bases x {base, +USR}, and the ablations) builds, trains a step, keeps
its output contract, and scripts to a module with the eager outputs."""
import pytest
import torch

from tests.unit.conftest_model import tiny_inputs, tiny_spec
from features.spec import INPUT_NAMES
from model.configs import BASE_NAMES, NAMED_CONFIGS, build_model, get_config
from model.data import build_labels
from model.export import script_model
from model.losses import ranking_loss
from tests.unit.conftest_model import tiny_table

VARIANTS = [name for base in BASE_NAMES for name in (base, f"{base}+USR")]
ABLATIONS = ["MMoE+USR-IE", "MMoE+USR-FG", "MMoE+USR-GLMT", "MMoE+USR-CL"]


def _model(name, **overrides):
    torch.manual_seed(12)
    return build_model(name, tiny_spec(), embedding_dim=4, **overrides)


@pytest.mark.parametrize("name", VARIANTS + ABLATIONS)
def test_scripted_equals_eager(name):
    model = _model(name).eval()
    x = tiny_inputs(24, seed=1)
    scripted = script_model(model)
    with torch.no_grad():
        eager = model(**x)
        ctr, ctcvr = scripted(*[x[n] for n in INPUT_NAMES])
    assert ctr.shape == (24,) and ctcvr.shape == (24,)
    torch.testing.assert_close(ctr, eager["ctr"], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ctcvr, eager["ctcvr"], atol=1e-6, rtol=1e-5)
    assert ((ctr > 0) & (ctr < 1)).all() and (ctcvr <= ctr).all()


@pytest.mark.parametrize("name", VARIANTS + ABLATIONS)
def test_training_outputs_and_one_step(name):
    model = _model(name).train()
    table = tiny_table(32, seed=2)
    x, labels = build_inputs_and_labels(table)
    out = model(**x)
    cfg = model.config
    assert ("gctr" in out) == cfg.use_glmt
    assert ("cl_loss" in out) == (cfg.use_cl and (cfg.use_ie or cfg.use_fg))
    if cfg.use_glmt:
        assert (out["ctr"] <= out["gctr"] + 1e-7).all()
    loss, parts = ranking_loss(out, labels, cfg)
    loss.backward()
    dense_grads = [p.grad for n, p in model.named_parameters() if n != "embedding.table.weight"]
    assert all(g is not None for g in dense_grads), "every dense parameter is used in training"


def build_inputs_and_labels(table):
    from features.tensors import build_inputs

    return build_inputs(tiny_spec(), table), build_labels(table)


def test_named_blocks_and_uniform_constructor():
    assert len([n for n in NAMED_CONFIGS if "-" not in n]) == 12
    cfg = get_config("PLE+USR-FG")
    assert cfg.base == "ple" and cfg.use_ie and not cfg.use_fg and cfg.use_glmt and cfg.use_cl
    baseline = get_config("STAR")
    assert not baseline.uses_usr
    with pytest.raises(KeyError):
        get_config("NoSuchModel")
    with pytest.raises(ValueError):
        get_config({"name": "x", "base": "nope"})
    choice = _model("APG+USR", ie_condition_user=True, fg_per_field=True, glmt_tie_ctcvr_to_global=True,
                    cl_positive="same_user")
    assert choice.ie.condition_user and choice.fg.per_field and choice.glmt.tie_ctcvr_to_global
