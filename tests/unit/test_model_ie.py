"""IE: S&R views user interest extractor (APG-style re-parameterised target attention)."""
import torch

from tests.unit.conftest_model import assert_script_matches
from model.layers.ie import InterestExtractor


def _batch(b=5, l=7, d=8, t=12, du=6):
    torch.manual_seed(1)
    keys = torch.randn(b, l, d)
    mask = torch.ones(b, l)
    mask[0, 2:] = 0
    mask[4] = 0
    return keys, mask, torch.randn(b, t), torch.randn(b, t), torch.randn(b, du)


def _ie(condition_user=False):
    torch.manual_seed(2)
    ie = InterestExtractor(8, 12, view_dim=4, user_dim=6, rank=4, hidden=8, condition_user=condition_user)
    with torch.no_grad():  # leave the identity start so the two views differ
        for p in ie.hyper.parameters():
            p.normal_(0, 0.3)
    return ie


def test_two_views_with_shapes_and_different_values():
    ie = _ie()
    h_s, h_r = ie(*_batch())
    assert h_s.shape == (5, 8) and h_r.shape == (5, 8)
    assert not torch.allclose(h_s[:4], h_r[:4])


def test_views_differ_through_the_generated_core_even_with_the_same_target():
    ie = _ie()
    keys, mask, t_s, _, user = _batch()
    h_s, h_r = ie(keys, mask, t_s, t_s, user)
    assert not torch.allclose(h_s[:4], h_r[:4])
    assert not torch.allclose(ie.core(0, user), ie.core(1, user))


def test_masking_and_empty_history():
    ie = _ie()
    keys, mask, t_s, t_r, user = _batch()
    h_s, h_r = ie(keys, mask, t_s, t_r, user)
    changed = keys.clone()
    changed[0, 2:] = 50.0
    h_s2, _ = ie(changed, mask, t_s, t_r, user)
    torch.testing.assert_close(h_s[0], h_s2[0])
    assert (h_s[4] == 0).all() and (h_r[4] == 0).all()


def test_condition_on_user_makes_the_core_per_sample_and_stops_its_gradient():
    ie = _ie(condition_user=True)
    keys, mask, t_s, t_r, user = _batch()
    core = ie.core(0, user)
    assert core.shape == (5, 4, 4)
    assert not torch.allclose(core[0], core[1])
    user = user.clone().requires_grad_(True)
    h_s, h_r = ie(keys, mask, t_s, t_r, user)
    (h_s.sum() + h_r.sum()).backward()
    assert user.grad is None or (user.grad == 0).all()
    plain = _ie(condition_user=False).core(0, user.detach())
    torch.testing.assert_close(plain[0], plain[1])


def test_script_matches_eager():
    assert_script_matches(_ie(), *_batch())
    assert_script_matches(_ie(condition_user=True), *_batch())
