"""Mean Teacher (Tarvainen & Valpola, NeurIPS 2017) as an nnU-Net trainer: the student matches, on unlabelled images,
the softmax of an exponential moving average of itself that sees the same images with noise added.

Choices, from the authors' medical-imaging code (SSL4MIS, train_mean_teacher_2D/3D.py; none of it copied):
- teacher: EMA with momentum min(1 - 1/(n + 1), 0.99) at update n; its input is the student's unlabelled batch plus
  Gaussian noise N(0, 0.1) clipped to +-0.2;
- consistency: the mean over classes and voxels of the squared softmax difference, at every deep-supervision scale
  with nnU-Net's scale weights, weight 0.1 x the sigmoid ramp-up over the whole run (per epoch here, per 150 steps
  there);
- supervised loss: nnU-Net's (Dice + CE, deep supervision) on the plans' labelled batch, and an unlabelled batch as
  large (SSL4MIS: 12 + 12);
- recipe-only twin (``second_batch_from_labelled``): the consistency target is the one-hot true label.
"""
from typing import List

import torch
from torch import nn

from nnunetv2_dualunc.method.consistency import SoftTargetMSE, as_probabilities, with_weight
from nnunetv2_dualunc.training.baselines.online import nnUNetTrainerOnlineSemiSupervised
from nnunetv2_dualunc.training.continued import nnUNetTrainerContinued
from nnunetv2_dualunc.training.online_teacher import EmaTeacherMixin


class nnUNetTrainerMeanTeacher(EmaTeacherMixin, nnUNetTrainerOnlineSemiSupervised):
    unsupervised_loss_weight = 0.1
    rampup_share = 1.0
    teacher_momentum_warmup = True
    teacher_noise_std: float = 0.1
    teacher_noise_clip: float = 0.2

    def pseudo_label_loss(self) -> nn.Module:
        return SoftTargetMSE()

    def second_batch_targets(self, data: torch.Tensor, targets: List[torch.Tensor]) -> List[torch.Tensor]:
        """with_weight(probabilities, 1) per scale: the noisy teacher's, or the one-hot labels of a labelled batch."""
        if self.second_batch_is_labelled:
            return self.one_hot_targets(targets)
        probabilities = [torch.softmax(t.float(), 1) for t in self._teacher_outputs(self.noisy(data))]
        return [with_weight(p, torch.ones_like(p[:, :1])) for p in probabilities[:len(targets)]]

    def noisy(self, data: torch.Tensor) -> torch.Tensor:
        """The teacher's view: data + N(0, teacher_noise_std) clipped to +-teacher_noise_clip."""
        noise = torch.randn_like(data) * self.teacher_noise_std
        return data + noise.clamp(-self.teacher_noise_clip, self.teacher_noise_clip)

    def one_hot_targets(self, labels: List[torch.Tensor]) -> List[torch.Tensor]:
        """with_weight(one-hot label, voxel is not the ignore label) per scale."""
        classes = self.label_manager.num_segmentation_heads
        return [with_weight(*as_probabilities(t, classes, self.label_manager.ignore_label)) for t in labels]


class nnUNetTrainerMeanTeacherWarmStart(nnUNetTrainerContinued, nnUNetTrainerMeanTeacher):
    """Mean Teacher continuing this fold's nnUNetTrainer model (the warm-start protocol's epochs and phases)."""
