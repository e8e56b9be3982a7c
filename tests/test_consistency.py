"""Update rules of the comparison's baselines against hand-computed values: ramp-ups, Mean Teacher's consistency and
EMA warm-up, UA-MT's uncertainty mask, URPC's rectified pyramid consistency, FixMatch's confidence mask, ST++'s
stability score and the strong view's CutMix (method/consistency.py, method/strong_augmentation.py,
method/ranking.py, training/online_teacher.py)."""
import math

import pytest
import torch

from nnunetv2_dualunc.method.consistency import (as_probabilities, certainty_mask, confident_pseudo_labels, entropy,
                                                 masked_cross_entropy, masked_squared_difference,
                                                 rectified_pyramid_consistency, sigmoid_rampup, softmax_mse,
                                                 split_weight, uncertainty_threshold, upsampled_probabilities,
                                                 with_weight, without_ignored)
from nnunetv2_dualunc.method.ranking import prediction_instability
from nnunetv2_dualunc.method.strong_augmentation import cutmix, gaussian_blur, photometric, strong_view
from nnunetv2_dualunc.training.baselines.mean_teacher import nnUNetTrainerMeanTeacher
from nnunetv2_dualunc.training.baselines.online import nnUNetTrainerOnlineSemiSupervised


def _voxels(*probabilities) -> torch.Tensor:
    """(1, C, V) probabilities, one voxel per argument."""
    return torch.tensor(probabilities, dtype=torch.float32).T[None]


def test_sigmoid_rampup_runs_from_exp_minus_five_to_one_and_stays():
    assert sigmoid_rampup(0) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(0.5) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(1) == sigmoid_rampup(3) == 1.0
    assert sigmoid_rampup(-1) == pytest.approx(math.exp(-5))


def test_online_weight_ramps_per_epoch_over_its_share():
    trainer = object.__new__(type("T", (nnUNetTrainerOnlineSemiSupervised,),
                                  {"unsupervised_loss_weight": 0.1, "rampup_share": 0.5}))
    trainer.num_epochs = 10
    trainer.current_epoch = 0
    assert trainer.unsupervised_weight() == pytest.approx(0.1 * math.exp(-5))
    trainer.current_epoch = 2  # progress 0.2 of a ramp over 0.5: t = 0.4
    assert trainer.unsupervised_weight() == pytest.approx(0.1 * math.exp(-5 * 0.6 ** 2))
    trainer.current_epoch = 7
    assert trainer.unsupervised_weight() == pytest.approx(0.1)


def test_softmax_mse_is_the_mean_squared_difference_of_probabilities():
    logits = torch.zeros(1, 2, 2)  # softmax 0.5 / 0.5 at both voxels
    teacher = _voxels((1.0, 0.0), (0.5, 0.5))
    assert float(softmax_mse(logits, teacher)) == pytest.approx((0.25 + 0.25 + 0 + 0) / 4)
    only_first = torch.tensor([[[1.0, 0.0]]])
    assert float(softmax_mse(logits, teacher, only_first)) == pytest.approx(0.25)


def test_mean_teacher_momentum_warms_up_to_its_cap():
    trainer = object.__new__(nnUNetTrainerMeanTeacher)
    momenta = []
    for updates in (0, 1, 2, 99, 100, 5000):
        trainer._teacher_updates = updates
        momenta.append(trainer.current_teacher_momentum())
    assert momenta == pytest.approx([0.0, 0.5, 2 / 3, 0.99, 0.99, 0.99])


def test_ua_mt_counts_only_voxels_whose_entropy_is_below_the_ramped_threshold():
    mean = _voxels((0.5, 0.5), (0.9, 0.1))
    uncertainty = entropy(mean)
    assert float(uncertainty[0, 0, 0]) == pytest.approx(math.log(2), abs=1e-5)
    assert float(uncertainty[0, 0, 1]) == pytest.approx(-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)), abs=1e-5)
    assert uncertainty_threshold(0) == pytest.approx((0.75 + 0.25 * math.exp(-5)) * math.log(2))
    assert uncertainty_threshold(1) == pytest.approx(math.log(2))
    mask = certainty_mask(uncertainty, uncertainty_threshold(0))  # 0.693 is above 0.521, 0.325 below
    assert mask.flatten().tolist() == [0.0, 1.0]
    # the certain voxel alone: (0.5 - 0.9)^2 + (0.5 - 0.1)^2 = 0.32 over 2 x 1 voxel
    loss = masked_squared_difference(torch.zeros(1, 2, 2), mean, mask)
    assert float(loss) == pytest.approx(0.32 / 2)


def test_urpc_consistency_matches_the_formula_on_two_voxels():
    # scale 1 and scale 2 disagree at voxel 0 (0.8/0.2 against 0.4/0.6) and agree at voxel 1 (0.5/0.5)
    first, second = _voxels((0.8, 0.2), (0.5, 0.5)), _voxels((0.4, 0.6), (0.5, 0.5))
    u1 = 0.6 * math.log(0.6 / 0.8) + 0.4 * math.log(0.4 / 0.2)  # KL(mean || scale) at voxel 0, mean = 0.6 / 0.4
    u2 = 0.6 * math.log(0.6 / 0.4) + 0.4 * math.log(0.4 / 0.6)

    def per_scale(u):  # squared distance 0.04 per class at voxel 0, 0 at voxel 1; weights exp(-u) and 1
        return (0.04 * 2 * math.exp(-u) / 4) / ((math.exp(-u) + 1) / 2) + u / 2
    expected = (per_scale(u1) + per_scale(u2)) / 2
    assert float(rectified_pyramid_consistency([first, second])) == pytest.approx(expected, rel=1e-4)
    assert float(rectified_pyramid_consistency([first, first])) == pytest.approx(0.0, abs=1e-6)


def test_pyramid_scales_are_upsampled_to_full_resolution_before_the_softmax():
    scales = [torch.randn(2, 3, 8, 8), torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2)]
    probabilities = upsampled_probabilities(scales, (8, 8))
    assert all(p.shape == (2, 3, 8, 8) for p in probabilities)
    assert all(torch.allclose(p.sum(1), torch.ones(2, 8, 8)) for p in probabilities)
    assert torch.allclose(probabilities[0], torch.softmax(scales[0], 1))


def test_fixmatch_keeps_the_confident_voxels_and_averages_over_all():
    labels, mask = confident_pseudo_labels(_voxels((0.96, 0.04), (0.6, 0.4), (0.01, 0.99)), 0.95)
    assert labels.flatten().tolist() == [0.0, 0.0, 1.0] and mask.flatten().tolist() == [1.0, 0.0, 1.0]
    logits = torch.zeros(1, 2, 3)  # cross entropy ln 2 everywhere
    assert float(masked_cross_entropy(logits, labels, mask)) == pytest.approx(2 * math.log(2) / 3)


def test_labels_become_one_hot_targets_and_the_ignore_label_counts_nowhere():
    labels = torch.tensor([[[0.0, 2.0, 3.0]]])  # (B, 1, V), 3 = ignore
    probabilities, valid = as_probabilities(labels, 3, ignore_label=3)
    assert probabilities[0].T.tolist() == [[1, 0, 0], [0, 0, 1], [1, 0, 0]]
    assert valid.flatten().tolist() == [1.0, 1.0, 0.0]
    soft = torch.rand(1, 3, 3)
    assert as_probabilities(soft, 3)[0] is not None and torch.equal(as_probabilities(soft, 3)[0], soft)
    target, weight = split_weight(with_weight(probabilities, valid))
    assert torch.equal(target, probabilities) and torch.equal(weight, valid)


@pytest.mark.parametrize("shape, factors", [((16, 16), (1, 2, 4)), ((8, 16, 16), (1, 2))])
def test_cutmix_pastes_the_next_samples_box_into_image_and_targets_alike(shape, factors):
    n = 3
    data = torch.arange(n, dtype=torch.float32).reshape(n, 1, *([1] * len(shape))).expand(n, 1, *shape).clone()
    targets = [data[(slice(None), slice(None)) + tuple(slice(None, None, f) for _ in shape)].clone() for f in factors]
    mixed, (mixed_targets,) = cutmix(data, [targets], probability=1.0, generator=torch.Generator().manual_seed(0))
    for i in range(n):
        from_next = mixed[i, 0] == (i + 1) % n
        assert 0 < from_next.float().mean() < 1 and torch.all((mixed[i, 0] == i) | from_next)
        for factor, target in zip(factors, mixed_targets):
            grid = from_next[tuple(slice(None, None, factor) for _ in shape)]
            assert torch.equal(target[i, 0] == (i + 1) % n, grid)
    assert torch.equal(data[:, 0, 0], torch.arange(n, dtype=torch.float32).reshape(n, *([1] * (len(shape) - 1))
                                                                                        ).expand(n, *shape[1:]))


def test_strong_view_changes_intensities_not_positions():
    generator = torch.Generator().manual_seed(3)
    constant = torch.full((1, 12, 12), 2.0)
    assert torch.allclose(gaussian_blur(constant, 1.5), constant)  # blur moves no mass at the edges either
    image = torch.randn(1, 12, 12)
    assert photometric(image, generator).shape == image.shape
    data = torch.randn(4, 1, 16, 16)
    labels = [torch.randint(0, 3, (4, 1, 16, 16)).float(), torch.randint(0, 3, (4, 1, 8, 8)).float()]
    strong, (mixed_labels,) = strong_view(data, [labels], torch.Generator().manual_seed(0))
    assert strong.shape == data.shape and [t.shape for t in mixed_labels] == [t.shape for t in labels]
    assert not torch.equal(strong, data)


def test_st_plus_plus_scores_a_case_by_the_class_mean_iou_of_earlier_snapshots_with_the_final_one():
    def probabilities(labels):  # one-hot (C = 3, V) of a label row
        return torch.nn.functional.one_hot(torch.tensor(labels), 3).T.float()
    final = probabilities([0, 0, 1, 1])
    same, shifted = probabilities([0, 0, 1, 1]), probabilities([0, 1, 1, 2])
    # shifted against final: class 0 IoU 1/2, class 1 IoU 1/3, class 2 IoU 0/1 -> mean 5/18
    assert prediction_instability(final, [same]) == pytest.approx(0.0)
    assert prediction_instability(final, [shifted]) == pytest.approx(1 - 5 / 18)
    assert prediction_instability(final, iter([same, shifted])) == pytest.approx(1 - (1 + 5 / 18) / 2)
    with pytest.raises(ValueError):
        prediction_instability(final, [])


def test_without_ignored_zeroes_the_ignore_label_and_masks_it_out():
    labels = torch.tensor([[[0.0, 3.0, 2.0, 3.0]]])
    cleaned, valid = without_ignored(labels, ignore_label=3)
    assert cleaned.tolist() == [[[0.0, 0.0, 2.0, 0.0]]] and valid.tolist() == [[[1.0, 0.0, 1.0, 0.0]]]
    same, everywhere = without_ignored(labels)
    assert same is labels and everywhere.tolist() == [[[1.0, 1.0, 1.0, 1.0]]]
