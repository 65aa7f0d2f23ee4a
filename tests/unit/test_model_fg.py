"""FG: S&R views feature generator."""
import torch

from tests.unit.conftest_model import assert_script_matches
from model.layers.fg import FeatureGenerator


def _fg(per_field=False):
    torch.manual_seed(3)
    fg = FeatureGenerator(n_fields=3, dim=4, view_dim=4, hidden=8, per_field=per_field)
    return fg


def test_gates_start_at_one():
    fg = _fg()
    e = torch.randn(6, 12)
    e_s, e_r = fg(e)
    torch.testing.assert_close(e_s, e)
    torch.testing.assert_close(e_r, e)


def test_gates_lie_in_0_2_and_views_differ_after_training_signal():
    fg = _fg()
    with torch.no_grad():
        fg.gate_out.weight.normal_(0, 2.0)
    e = torch.randn(6, 12)
    e_s, e_r = fg(e)
    ratio = e_s / e
    assert (ratio > 0).all() and (ratio < 2).all()
    assert not torch.allclose(e_s, e_r)


def test_per_field_gates_are_constant_within_a_field():
    fg = _fg(per_field=True)
    with torch.no_grad():
        fg.gate_out.weight.normal_(0, 2.0)
    e = torch.rand(5, 12) + 0.5
    e_s, _ = fg(e)
    ratio = (e_s / e).view(5, 3, 4)
    torch.testing.assert_close(ratio, ratio[:, :, :1].expand_as(ratio))


def test_gate_sees_stop_gradient_features():
    fg = _fg()
    with torch.no_grad():
        fg.gate_out.weight.normal_(0, 1.0)
    e = torch.randn(4, 12, requires_grad=True)
    e_s, _ = fg(e)
    e_s.sum().backward()
    gate = (e_s / e).detach()
    torch.testing.assert_close(e.grad, gate)  # d(g * E)/dE = g only: no path through the gate


def test_script_matches_eager():
    assert_script_matches(_fg(), torch.randn(4, 12))
    assert_script_matches(_fg(per_field=True), torch.randn(4, 12))
