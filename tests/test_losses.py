"""Eq. 2 / Eq. 4 against values computed by hand."""
import math

import pytest
import torch

from nnunetv2_dualunc.method.losses import (PseudoLabelCrossEntropyLoss, RectifiedPseudoLabelLoss, kl_divergence_map,
                                            pseudo_label_cross_entropy, rectified_pseudo_label_loss)


def _logits_for(probabilities):
    """logits whose softmax over dim 1 is `probabilities` (shape (B, C, *spatial))."""
    return torch.log(torch.tensor(probabilities, dtype=torch.float64))


def test_kl_map_matches_hand_computed_value():
    # one voxel, two classes: p = (0.8, 0.2), q = (0.5, 0.5)
    main = _logits_for([[[0.8], [0.2]]])
    aux = _logits_for([[[0.5], [0.5]]])
    expected = 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5)
    kl = kl_divergence_map(main, aux)
    assert kl.shape == (1, 1, 1)
    assert kl.item() == pytest.approx(expected, rel=1e-6)


def test_kl_is_zero_for_identical_and_asymmetric_otherwise():
    a = torch.randn(2, 3, 4, 5)
    b = torch.randn(2, 3, 4, 5)
    assert torch.allclose(kl_divergence_map(a, a), torch.zeros(2, 1, 4, 5), atol=1e-6)
    assert (kl_divergence_map(a, b) >= -1e-6).all()
    assert not torch.allclose(kl_divergence_map(a, b), kl_divergence_map(b, a))


def test_rectified_loss_matches_hand_computed_value():
    # two voxels (2D image 1x2), two classes, pseudo-label (0, 1)
    p = [[[[0.8, 0.3]], [[0.2, 0.7]]]]
    q = [[[[0.5, 0.3]], [[0.5, 0.7]]]]
    main, aux = _logits_for(p), _logits_for(q)
    target = torch.tensor([[[[0, 1]]]], dtype=torch.float32)  # nnU-Net style (B, 1, H, W)
    kl0 = 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5)
    kl1 = 0.0
    ce0, ce1 = -math.log(0.8), -math.log(0.7)
    expected = ((math.exp(-kl0) * ce0 + kl0) + (math.exp(-kl1) * ce1 + kl1)) / 2
    assert rectified_pseudo_label_loss(main, aux, target).item() == pytest.approx(expected, rel=1e-6)
    assert RectifiedPseudoLabelLoss()(main, aux, target).item() == pytest.approx(expected, rel=1e-6)


def test_rectified_loss_equals_cross_entropy_when_decoders_agree():
    main = torch.randn(2, 4, 3, 3, 3)
    target = torch.randint(0, 4, (2, 1, 3, 3, 3)).float()
    ce = torch.nn.functional.cross_entropy(main, target[:, 0].long())
    assert rectified_pseudo_label_loss(main, main.clone(), target).item() == pytest.approx(ce.item(), rel=1e-5)
    assert pseudo_label_cross_entropy(main, target).item() == pytest.approx(ce.item(), rel=1e-5)
    assert PseudoLabelCrossEntropyLoss()(main, target).item() == pytest.approx(ce.item(), rel=1e-5)


def test_ignored_voxels_do_not_count():
    main = torch.randn(1, 3, 4, 4)
    aux = torch.randn(1, 3, 4, 4)
    target = torch.randint(0, 3, (1, 1, 4, 4)).float()
    with_ignore = target.clone()
    with_ignore[..., :2, :] = 7
    full = rectified_pseudo_label_loss(main[..., 2:, :], aux[..., 2:, :], target[..., 2:, :])
    masked = rectified_pseudo_label_loss(main, aux, with_ignore, ignore_index=7)
    assert masked.item() == pytest.approx(full.item(), rel=1e-5)


def test_gradient_reaches_both_decoders():
    main = torch.randn(1, 3, 4, 4, requires_grad=True)
    aux = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (1, 1, 4, 4)).float()
    rectified_pseudo_label_loss(main, aux, target).backward()
    assert main.grad.abs().sum() > 0 and aux.grad.abs().sum() > 0


def test_detached_weight_keeps_the_value_and_stops_its_gradient():
    main = torch.randn(1, 3, 4, 4, requires_grad=True)
    aux = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (1, 1, 4, 4)).float()
    detached = rectified_pseudo_label_loss(main, aux, target, detach_weight=True)
    assert detached.item() == pytest.approx(rectified_pseudo_label_loss(main, aux, target).item(), rel=1e-6)
    # the auxiliary decoder now gets gradient from the + KL term alone
    detached.backward()
    kl_only = kl_divergence_map(main.detach(), aux).mean()
    expected = torch.autograd.grad(kl_only, aux)[0]
    assert torch.allclose(aux.grad, expected, atol=1e-6)
    assert RectifiedPseudoLabelLoss(detach_weight=True)(main, aux, target).item() == pytest.approx(detached.item())
