"""Update rules of the consistency baselines (Mean Teacher, UA-MT, URPC, FixMatch): pure tensor functions, checked
against hand-computed values in tests/test_consistency.py. The trainers that use them are in training/baselines/.

Conventions: logits and probabilities are (B, C, *spatial); nnU-Net's targets are label maps (B, 1, *spatial), floats;
a ``valid`` mask or voxel weight is (B, 1, *spatial). A trainer hands a loss its target and the target's voxel weight
as one tensor, the weight as the last channel (``with_weight``), because nnU-Net's deep-supervision wrapper passes
one target per scale. Every loss is computed in float32 (autocast would give fp16 softmaxes whose squared differences
underflow).
"""
import math
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sigmoid_rampup(progress: float) -> float:
    """exp(-5 (1 - t)^2) for t = progress clipped to [0, 1] (Laine & Aila 2017, the ramp-up of Mean Teacher, UA-MT and
    URPC): about 0.007 at the start, 1 at the end."""
    t = min(max(float(progress), 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def without_ignored(labels: Tensor, ignore_label: Optional[int] = None) -> tuple:
    """(labels with the ignore label's voxels set to class 0, float mask of the other voxels), for a label map of any
    shape: a loss then computes on valid class indices and weights the ignored voxels 0."""
    if ignore_label is None:
        return labels, torch.ones_like(labels, dtype=torch.float32)
    ignored = labels == ignore_label
    return labels.masked_fill(ignored, 0), (~ignored).float()


def as_probabilities(target: Tensor, num_classes: int, ignore_label: Optional[int] = None) -> tuple:
    """(probabilities, valid) for a target that is either soft already (C channels: all voxels valid) or a label map
    (1 channel: one-hot; voxels of ignore_label are not valid). The recipe-only twins hand true label maps to losses
    that otherwise compare with a teacher's probabilities."""
    if target.shape[1] == num_classes and num_classes > 1:
        return target.float(), torch.ones_like(target[:, :1], dtype=torch.float32)
    labels, valid = without_ignored(target[:, 0].long(), ignore_label)
    one_hot = F.one_hot(labels, num_classes).movedim(-1, 1).float()
    return one_hot, valid[:, None]


def softmax_mse(student_logits: Tensor, teacher_probabilities: Tensor, valid: Optional[Tensor] = None) -> Tensor:
    """Mean Teacher's consistency: the mean over classes and voxels of (softmax(student) - teacher)^2 (only the valid
    voxels when a mask is given)."""
    squared = (F.softmax(student_logits.float(), dim=1) - teacher_probabilities.float()) ** 2
    if valid is None:
        return squared.mean()
    return (squared * valid).sum() / (valid.sum() * squared.shape[1]).clamp_min(1)


def entropy(probabilities: Tensor, eps: float = 1e-6) -> Tensor:
    """Voxel-wise predictive entropy -sum_c p log(p + eps), natural log, shaped (B, 1, *spatial)."""
    p = probabilities.float()
    return -(p * torch.log(p + eps)).sum(dim=1, keepdim=True)


def uncertainty_threshold(progress: float) -> float:
    """UA-MT's threshold on the entropy: (0.75 + 0.25 * sigmoid_rampup(progress)) * ln 2, so that ever more voxels
    pass. The authors' code keeps ln 2 (the largest entropy of two classes) with more classes too."""
    return (0.75 + 0.25 * sigmoid_rampup(progress)) * math.log(2)


def certainty_mask(teacher_uncertainty: Tensor, threshold: float) -> Tensor:
    """UA-MT: 1 where the teacher's uncertainty is below the threshold, else 0."""
    return (teacher_uncertainty < threshold).float()


def masked_squared_difference(student_logits: Tensor, teacher_probabilities: Tensor, mask: Tensor) -> Tensor:
    """UA-MT's consistency: the squared softmax difference summed over classes and the masked voxels, divided by
    2 x the number of masked voxels (the authors' normalisation)."""
    squared = (F.softmax(student_logits.float(), dim=1) - teacher_probabilities.float()) ** 2
    return (squared * mask).sum() / (2 * mask.sum() + 1e-16)


def upsampled_probabilities(logits_per_scale: Sequence[Tensor], size: Sequence[int]) -> List[Tensor]:
    """Softmax of each scale's logits after (bi/tri)linear upsampling to size (URPC's pyramid)."""
    mode = "bilinear" if len(size) == 2 else "trilinear"
    return [F.softmax(logits.float() if tuple(logits.shape[2:]) == tuple(size) else
                      F.interpolate(logits.float(), size=tuple(size), mode=mode, align_corners=False), dim=1)
            for logits in logits_per_scale]


def rectified_pyramid_consistency(probabilities_per_scale: Sequence[Tensor],
                                  valid: Optional[Tensor] = None) -> Tensor:
    """URPC: with p_mean the average of the scales' probabilities and, per scale s, u_s = KL(p_mean || p_s) per voxel,
    the mean over scales of  mean(exp(-u_s) (p_mean - p_s)^2) / mean(exp(-u_s)) + mean(u_s).

    The squared distance is down-weighted where a scale disagrees with the pyramid; the + mean(u_s) term makes the
    scales agree. p_mean is not detached (as in the authors' code: every scale is pulled towards every other)."""
    mean = torch.stack(list(probabilities_per_scale)).mean(dim=0)
    if valid is None:
        valid = torch.ones_like(mean[:, :1])
    n_valid = valid.sum().clamp_min(1)
    losses = []
    for p in probabilities_per_scale:
        divergence = (mean * (torch.log(mean + 1e-8) - torch.log(p + 1e-8))).sum(dim=1, keepdim=True)
        weight = torch.exp(-divergence)
        distance = ((mean - p) ** 2 * weight * valid).sum() / (n_valid * mean.shape[1])
        losses.append(distance / ((weight * valid).sum() / n_valid + 1e-8) + (divergence * valid).sum() / n_valid)
    return torch.stack(losses).mean()


def confident_pseudo_labels(probabilities: Tensor, threshold: float) -> tuple:
    """FixMatch: (argmax label map (B, 1, *spatial) float, mask of voxels whose top probability reaches threshold)."""
    confidence, labels = probabilities.float().max(dim=1, keepdim=True)
    return labels.float(), (confidence >= threshold).float()


def masked_cross_entropy(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """FixMatch's unlabelled loss: cross entropy summed over the confident voxels, divided by all voxels (a batch with
    few confident voxels contributes little, not a loudly normalised few)."""
    ce = F.cross_entropy(logits.float(), labels[:, 0].long(), reduction="none")
    return (ce * mask[:, 0]).sum() / mask[:, 0].numel()


def with_weight(target: Tensor, weight: Tensor) -> Tensor:
    """A target (probabilities or a label map) and its voxel weight in one tensor, the weight as the last channel."""
    return torch.cat((target.float(), weight.float()), dim=1)


def split_weight(packed: Tensor) -> tuple:
    """(target, voxel weight) of a with_weight tensor."""
    return packed[:, :-1], packed[:, -1:]


class SoftTargetMSE(nn.Module):
    """softmax_mse against with_weight(teacher probabilities, weight): Mean Teacher."""

    def forward(self, logits: Tensor, packed: Tensor) -> Tensor:
        probabilities, weight = split_weight(packed)
        return softmax_mse(logits, probabilities, weight)


class MaskedSoftTargetMSE(nn.Module):
    """masked_squared_difference against with_weight(teacher probabilities, certainty mask): UA-MT."""

    def forward(self, logits: Tensor, packed: Tensor) -> Tensor:
        probabilities, mask = split_weight(packed)
        return masked_squared_difference(logits, probabilities, mask)


class ConfidentCrossEntropy(nn.Module):
    """masked_cross_entropy against with_weight(label map, confidence mask): FixMatch."""

    def forward(self, logits: Tensor, packed: Tensor) -> Tensor:
        labels, mask = split_weight(packed)
        return masked_cross_entropy(logits, labels, mask)
