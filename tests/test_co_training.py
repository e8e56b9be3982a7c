"""Deep co-training's update rules against hand-computed values (method/co_training.py): the Jensen-Shannon
agreement, the fast-gradient-sign examples (own argmax, true labels, ignore label) and the view-difference KL, and
the trainer's ramp of the adversarial weight."""
import math

import pytest
import torch
from torch import nn

from nnunetv2_dualunc.method.co_training import adversarial_kl, fgsm_example, jensen_shannon
from nnunetv2_dualunc.training.baselines.dct import nnUNetTrainerDeepCoTraining


def _voxels(*probabilities) -> torch.Tensor:
    """(1, C, V) probabilities, one voxel per argument."""
    return torch.tensor(probabilities, dtype=torch.float32).T[None]


def _h(*p) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


def test_jensen_shannon_is_the_entropy_of_the_mean_minus_the_mean_entropy():
    p, q = _voxels((0.8, 0.2), (1.0, 0.0)), _voxels((0.4, 0.6), (0.0, 1.0))
    expected = [_h(0.6, 0.4) - (_h(0.8, 0.2) + _h(0.4, 0.6)) / 2, math.log(2)]  # the second voxel: full disagreement
    assert jensen_shannon([p, q]).shape == (1, 1, 2)
    assert jensen_shannon([p, q]).flatten().tolist() == pytest.approx(expected, abs=1e-5)
    assert float(jensen_shannon([p, p]).abs().max()) < 1e-6
    with pytest.raises(ValueError, match="at least two"):
        jensen_shannon([p])


def test_jensen_shannon_pulls_both_predictions_together():
    logits_a = torch.tensor([[[2.0], [0.0]]], requires_grad=True)
    logits_b = torch.tensor([[[0.0], [2.0]]], requires_grad=True)
    jensen_shannon([torch.softmax(logits_a, 1), torch.softmax(logits_b, 1)]).sum().backward()
    # descending the gradient moves each towards the other: a's class-0 logit down, b's class-0 logit up
    assert logits_a.grad[0, 0, 0] > 0 and logits_b.grad[0, 0, 0] < 0


def _one_feature_network() -> nn.Module:
    """Logits (0, x) per voxel: p(class 1) = sigmoid(x)."""
    network = nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        network.weight.copy_(torch.tensor([0.0, 1.0]).view(2, 1, 1, 1))
        network.bias.zero_()
    return network


def test_fgsm_steps_epsilon_against_the_label_and_leaves_the_weights_alone():
    network = _one_feature_network()
    images = torch.tensor([[[[0.5, -1.0, 2.0]]]])
    # CE towards class 0 is log(1 + e^x): growing in x, so the attack adds epsilon; towards class 1 it subtracts
    labels = torch.tensor([[[[0.0, 1.0, 0.0]]]])
    adversarial, clean_logits = fgsm_example(network, images, labels, 0.1)
    assert adversarial.flatten().tolist() == pytest.approx([0.6, -1.1, 2.1])
    assert clean_logits[0, 1, 0].tolist() == pytest.approx([0.5, -1.0, 2.0]) and not clean_logits.requires_grad
    assert network.weight.grad is None and not adversarial.requires_grad
    # no labels: the network's own argmax (class 1 where x > 0) is attacked, pushing every voxel towards the boundary
    own, _ = fgsm_example(network, images, None, 0.1)
    assert own.flatten().tolist() == pytest.approx([0.4, -0.9, 1.9])
    # a voxel of the ignore label has no loss, so no gradient: it stays
    ignored, _ = fgsm_example(network, images, torch.tensor([[[[0.0, 2.0, 0.0]]]]), 0.1, ignore_label=2)
    assert ignored.flatten().tolist() == pytest.approx([0.6, -1.0, 2.1])


def test_adversarial_kl_is_kl_of_the_fixed_clean_prediction_to_the_adversarial_one():
    clean = torch.log(_voxels((0.8, 0.2), (0.5, 0.5))).requires_grad_(True)
    adversarial = torch.log(_voxels((0.4, 0.6), (0.5, 0.5))).requires_grad_(True)
    loss = adversarial_kl(adversarial, clean)
    assert float(loss.detach()) == pytest.approx((0.8 * math.log(2) + 0.2 * math.log(1 / 3) + 0) / 2, abs=1e-5)
    loss.backward()
    assert clean.grad is None and adversarial.grad is not None
    assert float(adversarial_kl(clean.detach(), clean.detach())) == pytest.approx(0, abs=1e-6)


def test_the_adversarial_weight_is_off_until_a_sixth_and_full_at_forty_percent():
    trainer = object.__new__(nnUNetTrainerDeepCoTraining)
    trainer.num_epochs = 60
    weights = {}
    for epoch in (0, 9, 10, 17, 24, 59):
        trainer.current_epoch = epoch
        weights[epoch] = trainer.adversarial_weight()
    assert weights[0] == weights[9] == 0.0
    assert weights[10] == pytest.approx(0.05 * math.exp(-5))
    assert weights[17] == pytest.approx(0.05 * math.exp(-5 * (1 - (17 / 60 - 1 / 6) / (0.4 - 1 / 6)) ** 2))
    assert weights[24] == weights[59] == pytest.approx(0.05)
