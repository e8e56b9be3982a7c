"""Eq. 2 / Eq. 4 against values computed by hand."""
import math

import pytest
import torch

from helpers import trainer_factory
from nnunetv2_dualunc.method.losses import (PseudoLabelCrossEntropyLoss, RectifiedPseudoLabelLoss, kl_divergence_map,
                                            pseudo_label_cross_entropy, rectified_pseudo_label_loss)
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.dualunc_plus import nnUNetTrainerDualUncPlus, nnUNetTrainerDualUncPlusFromScratch
from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart

# the option without copy-paste (a research variant, benchmarks/ext_trainers/research_trainers.py)
_PSEUDO_DICE = type("PseudoDice", (nnUNetTrainerDualUnc,), {"pseudo_label_dice": True})
_WARM_PSEUDO_DICE = type("WarmStartPseudoDice", (nnUNetTrainerDualUncWarmStart,), {"pseudo_label_dice": True})


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


def test_dice_term_weights_voxels_by_decoder_agreement():
    """Two voxels of one image, classes {0, 1}, Dice over the foreground class without smoothing, by hand."""
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    from nnunetv2.utilities.helpers import softmax_helper_dim1
    dice = MemoryEfficientSoftDiceLoss(apply_nonlin=softmax_helper_dim1, do_bg=False, smooth=0.0, ddp=False)
    main = _logits_for([[[[0.8, 0.3]], [[0.2, 0.7]]]])  # p(fg) = 0.2, 0.7
    aux = _logits_for([[[[0.8, 0.6]], [[0.2, 0.4]]]])  # agrees on voxel 0, not on voxel 1
    target = torch.tensor([[[[1.0, 1.0]]]])
    kl1 = 0.3 * math.log(0.3 / 0.6) + 0.7 * math.log(0.7 / 0.4)
    w0, w1 = 1.0, math.exp(-kl1)
    expected_dice = 2 * (w0 * 0.2 + w1 * 0.7) / ((w0 + w1) + (w0 * 0.2 + w1 * 0.7))
    without = rectified_pseudo_label_loss(main, aux, target)
    with_dice = rectified_pseudo_label_loss(main, aux, target, dice=dice)
    assert (with_dice - without).item() == pytest.approx(-expected_dice, rel=1e-6)
    # unweighted, the disagreeing voxel would count fully: the weighting changes the value
    assert expected_dice != pytest.approx(2 * 0.9 / (2 + 0.9), rel=1e-3)
    assert RectifiedPseudoLabelLoss(dice=dice)(main, aux, target).item() == pytest.approx(with_dice.item())


def test_dice_term_skips_ignored_voxels_and_its_weight_has_no_gradient():
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    from nnunetv2.utilities.helpers import softmax_helper_dim1
    dice = MemoryEfficientSoftDiceLoss(apply_nonlin=softmax_helper_dim1, do_bg=False, smooth=1e-5, ddp=False)
    torch.manual_seed(0)
    main = torch.randn(1, 3, 4, 4, requires_grad=True)
    aux = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (1, 1, 4, 4)).float()
    with_ignore = target.clone()
    with_ignore[..., :2, :] = 7
    full = rectified_pseudo_label_loss(main[..., 2:, :], aux[..., 2:, :], target[..., 2:, :], dice=dice)
    masked = rectified_pseudo_label_loss(main, aux, with_ignore, ignore_index=7, dice=dice)
    assert masked.item() == pytest.approx(full.item(), rel=1e-5)
    # the auxiliary decoder's gradient is that of Eq. 4 alone: the Dice's voxel weight is a constant
    with_dice_grad = torch.autograd.grad(rectified_pseudo_label_loss(main, aux, target, dice=dice), aux)[0]
    eq4_grad = torch.autograd.grad(rectified_pseudo_label_loss(main, aux, target), aux)[0]
    assert torch.allclose(with_dice_grad, eq4_grad, atol=1e-6)


@pytest.mark.parametrize("trainer_class", [_PSEUDO_DICE, _WARM_PSEUDO_DICE, nnUNetTrainerDualUncPlusFromScratch,
                                           nnUNetTrainerDualUncPlus])
def test_pseudo_dice_trainers_add_nnunets_dice_to_eq4_at_every_scale(planned_workspace, monkeypatch, trainer_class):
    """The trainers' pseudo-label loss is Eq. 4 + the weighted Dice, with the labelled loss's Dice settings, under
    nnU-Net's deep-supervision weights; nnUNetTrainerDualUnc keeps Eq. 4 alone."""
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
    make_trainer = trainer_factory(planned_workspace, monkeypatch)

    def unsupervised_loss(trainer_class):
        trainer = make_trainer(trainer_class)
        trainer._build_loss()
        return trainer, trainer.unsupervised_loss

    trainer, with_dice = unsupervised_loss(trainer_class)
    _, eq4 = unsupervised_loss(nnUNetTrainerDualUnc)
    dice = with_dice.loss.dice
    assert isinstance(dice, MemoryEfficientSoftDiceLoss) and eq4.loss.dice is None
    assert dice.batch_dice == trainer.configuration_manager.batch_dice and not dice.do_bg
    torch.manual_seed(0)
    scales = [(4, 32, 32), (4, 16, 16)]
    main = [torch.randn(2, 3, *s[1:]) for s in scales]
    aux = [torch.randn(2, 3, *s[1:]) for s in scales]
    target = [torch.randint(0, 3, (2, 1, *s[1:])).float() for s in scales]
    weights = with_dice.weight_factors
    expected = sum(w * rectified_pseudo_label_loss(m, a, t, dice=dice)
                   for w, m, a, t in zip(weights, main, aux, target))
    assert with_dice(main, aux, target).item() == pytest.approx(expected.item(), rel=1e-5)
    assert with_dice(main, aux, target).item() != pytest.approx(eq4(main, aux, target).item(), rel=1e-3)


def test_labelled_loss_is_eq5_halved_unless_summed_as_nnunet(planned_workspace, monkeypatch):
    """Eq. 5's (Dice + CE) / 2 by default; labelled_loss_weight = 1.0 gives exactly nnUNetTrainer's labelled loss."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
    make_trainer = trainer_factory(planned_workspace, monkeypatch)

    class Summed(nnUNetTrainerDualUnc):
        labelled_loss_weight = 1.0

    def labelled_loss(trainer_class):
        return make_trainer(trainer_class)._build_loss()

    torch.manual_seed(0)
    scales = [(32, 32), (16, 16)]
    output = [torch.randn(2, 3, *s) for s in scales]
    target = [torch.randint(0, 3, (2, 1, *s)).float() for s in scales]
    nnunet = labelled_loss(nnUNetTrainer)(output, target).item()
    assert labelled_loss(Summed)(output, target).item() == pytest.approx(nnunet, rel=1e-5)
    assert labelled_loss(nnUNetTrainerDualUnc)(output, target).item() == pytest.approx(nnunet / 2, rel=1e-5)
