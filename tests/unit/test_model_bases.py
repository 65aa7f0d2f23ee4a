"""The six multi-scenario bases: shapes, slot behaviour, STAR's partitioned norm, scripting."""
import pytest
import torch

from tests.unit.conftest_model import assert_script_matches
from model.bases.star import PartitionedNorm
from model.usr_model import BASE_CLASSES

SMALL = {
    "shared_bottom": {"bottom": [16, 8]},
    "mmoe": {"n_experts": 3, "expert_dim": 8},
    "ple": {"n_levels": 2, "n_specific": 1, "n_shared": 1, "expert_dim": 8},
    "star": {"hidden": [16]},
    "m2m": {"n_experts": 3, "expert_dim": 8, "z_dim": 4, "attention_dim": 4},
    "apg": {"hidden": [16], "rank": 4, "z_dim": 4},
}


def _base(name, n_slots):
    torch.manual_seed(10)
    return BASE_CLASSES[name](12, n_slots, 2, out_dim=6, **SMALL[name])


@pytest.mark.parametrize("name", sorted(BASE_CLASSES))
@pytest.mark.parametrize("n_slots", [2, 3])
def test_one_representation_per_slot(name, n_slots):
    base = _base(name, n_slots).train()
    x, scen = torch.randn(9, 12), torch.tensor([0, 1] * 4 + [0])
    reps = base(x, scen)
    assert reps.shape == (9, n_slots, 6)
    assert torch.isfinite(reps).all()
    reps.sum().backward()
    grads = [p.grad for p in base.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", sorted(BASE_CLASSES))
def test_slots_are_not_identical(name):
    base = _base(name, 3).eval()
    with torch.no_grad():  # move away from identity/shared initialisations
        for p in base.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    reps = base(torch.randn(8, 12), torch.zeros(8, dtype=torch.long))
    assert not torch.allclose(reps[:, 0], reps[:, 1])


@pytest.mark.parametrize("name", sorted(BASE_CLASSES))
def test_script_matches_eager(name):
    x, scen = torch.randn(7, 12), torch.tensor([0, 1, 1, 0, 1, 0, 0])
    base = _base(name, 3)
    base.train()
    base(x, scen)  # STAR: fill the running statistics
    assert_script_matches(base, x, scen)


def test_partitioned_norm_uses_per_scenario_statistics():
    torch.manual_seed(11)
    pn = PartitionedNorm(3, 2, momentum=1.0, var_floor=0.0).train()
    scen = torch.tensor([0] * 50 + [1] * 50)
    x = torch.cat([torch.randn(50, 3) + 5.0, torch.randn(50, 3) * 3 - 2.0])
    out = pn(x, scen)
    for s in (0, 1):
        part = out[scen == s]
        torch.testing.assert_close(part.mean(0), torch.zeros(3), atol=1e-4, rtol=0)
        torch.testing.assert_close(part.var(0, unbiased=False), torch.ones(3), atol=1e-3, rtol=0)
    torch.testing.assert_close(pn.running_mean[0], x[:50].mean(0))
    pn.eval()
    torch.testing.assert_close(pn(x, scen), out, atol=1e-4, rtol=0)  # momentum 1: running == batch stats


def test_partitioned_norm_does_not_blow_up_inputs_constant_within_a_scenario():
    pn = PartitionedNorm(2, 2, momentum=0.1).train()
    scen = torch.tensor([0] * 20 + [1] * 20)
    for step in range(30):  # the constant column drifts a little every step, like a learned embedding
        x = torch.stack([torch.randn(40), torch.full((40,), 0.5 + 0.001 * step)], dim=1)
        pn(x, scen)
    pn.eval()
    out = pn(torch.stack([torch.randn(40), torch.full((40,), 0.53)], dim=1), scen)
    assert out[:, 1].abs().max() < 1.0
