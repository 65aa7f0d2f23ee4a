"""Contrastive loss between the S and R views (symmetric in-batch InfoNCE)."""
import math

import torch

from tests.unit.conftest_model import assert_script_matches
from model.layers.contrastive import ViewContrast, info_nce


def test_loss_falls_when_views_agree():
    torch.manual_seed(4)
    a = torch.randn(32, 16)
    users = torch.arange(32)
    agree = info_nce(a, a + 0.01 * torch.randn(32, 16), users)
    random = info_nce(a, torch.randn(32, 16), users)
    assert agree < 0.1 < random
    assert abs(float(random) - math.log(32)) < 3.0


def test_same_user_pairs_are_masked_from_the_negatives():
    torch.manual_seed(5)
    a = torch.randn(8, 4)
    b = a.clone()
    b[1] = a[0]                                  # sample 1's R view looks like sample 0's
    same_user = torch.tensor([0, 0, 1, 2, 3, 4, 5, 6])
    distinct = torch.arange(8)
    masked = info_nce(a, b, same_user, tau=0.1, mask_same_user=True)
    unmasked = info_nce(a, b, same_user, tau=0.1, mask_same_user=False)
    assert masked < unmasked
    torch.testing.assert_close(unmasked, info_nce(a, b, distinct, tau=0.1))


def test_symmetric_and_same_user_positive_choice():
    torch.manual_seed(6)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    users = torch.tensor([0, 0, 1, 1, 2, 2])
    torch.testing.assert_close(info_nce(a, b, users), info_nce(b, a, users))
    assert not torch.allclose(info_nce(a, b, users, same_user_positive=True), info_nce(a, b, users))


def test_gradient_pulls_views_together():
    torch.manual_seed(7)
    head = ViewContrast(8, proj_dim=8)
    a = torch.randn(16, 8)
    b = torch.randn(16, 8, requires_grad=True)
    opt = torch.optim.SGD([b], lr=0.5)
    before = float(head(a, b, torch.arange(16)).detach())
    for _ in range(30):
        opt.zero_grad()
        head(a, b, torch.arange(16)).backward()
        opt.step()
    assert float(head(a, b, torch.arange(16)).detach()) < before


def test_script_matches_eager():
    assert_script_matches(ViewContrast(8, proj_dim=4), torch.randn(5, 8), torch.randn(5, 8), torch.tensor([0, 1, 1, 2, 3]))
