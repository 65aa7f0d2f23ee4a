"""Static DIN attention (the baselines' interest layer)."""
import torch

from tests.unit.conftest_model import assert_script_matches
from model.layers.din import DINAttention
from model.layers.mlp import masked_softmax


def _batch(b=4, l=6, d=8, t=10):
    torch.manual_seed(0)
    keys = torch.randn(b, l, d)
    mask = torch.ones(b, l)
    mask[0, 3:] = 0
    mask[1] = 0
    return keys, mask, torch.randn(b, t)


def test_shape_and_weights_sum_to_one_over_valid_positions():
    din = DINAttention(8, 10, hidden=16)
    keys, mask, target = _batch()
    out = din(keys, mask, target)
    assert out.shape == (4, 8)
    w = din.attention_weights(keys, mask, target)
    torch.testing.assert_close(w[0].sum(), torch.tensor(1.0))
    assert (w[0, 3:] == 0).all()


def test_masked_positions_do_not_change_the_output_and_empty_history_gives_zero():
    din = DINAttention(8, 10, hidden=16)
    keys, mask, target = _batch()
    out = din(keys, mask, target)
    changed = keys.clone()
    changed[0, 3:] += 100.0
    changed[1] += 5.0
    out2 = din(changed, mask, target)
    torch.testing.assert_close(out[0], out2[0])
    assert (out[1] == 0).all() and (out2[1] == 0).all()


def test_attention_depends_on_the_target():
    din = DINAttention(8, 10, hidden=16)
    keys, mask, target = _batch()
    assert not torch.allclose(din(keys, mask, target)[2], din(keys, mask, -target)[2])


def test_masked_softmax_rows():
    w = masked_softmax(torch.tensor([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]), torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(w[0], torch.cat([torch.softmax(torch.tensor([1.0, 2.0]), 0), torch.zeros(1)]))
    assert (w[1] == 0).all()


def test_script_matches_eager():
    assert_script_matches(DINAttention(8, 10, hidden=16), *_batch())
