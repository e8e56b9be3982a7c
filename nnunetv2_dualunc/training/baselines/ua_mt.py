"""UA-MT, uncertainty-aware Mean Teacher (Yu et al., MICCAI 2019): Mean Teacher whose consistency counts only the
voxels where the teacher is certain, the certainty judged from several noisy teacher passes.

Choices, from the authors' code (yulequan/UA-MT, and SSL4MIS train_uncertainty_aware_mean_teacher_2D/3D.py; none of
it copied):
- T = 8 teacher passes, each on the unlabelled batch plus fresh clipped Gaussian noise (Mean Teacher's); the
  authors' networks also keep dropout on in the teacher, nnU-Net's have no dropout, so noise is the only source of
  randomness here;
- uncertainty: the entropy (natural log) of the mean of the T softmaxes; a voxel counts when it is below
  (0.75 + 0.25 x sigmoid ramp-up) x ln 2 (ln 2 also with more classes, as in their 2D code);
- target: the softmax of one noisy teacher pass (the first of the T; they draw one more);
- consistency: sum of squared softmax differences over the certain voxels / (2 x their number), weight 0.1 x the
  sigmoid ramp-up over the whole run, every deep-supervision scale with nnU-Net's weights;
- recipe-only twin: one-hot true labels, every annotated voxel counted.
"""
from typing import List

import torch
from torch import nn

from nnunetv2_dualunc.method.consistency import (MaskedSoftTargetMSE, certainty_mask, entropy, uncertainty_threshold,
                                                 with_weight)
from nnunetv2_dualunc.training.baselines.mean_teacher import nnUNetTrainerMeanTeacher
from nnunetv2_dualunc.training.continued import nnUNetTrainerContinued


class nnUNetTrainerUAMT(nnUNetTrainerMeanTeacher):
    uncertainty_passes: int = 8

    def pseudo_label_loss(self) -> nn.Module:
        return MaskedSoftTargetMSE()

    def second_batch_targets(self, data: torch.Tensor, targets: List[torch.Tensor]) -> List[torch.Tensor]:
        """with_weight(first pass's probabilities, certainty mask) per scale."""
        if self.second_batch_is_labelled:
            return self.one_hot_targets(targets)
        passes = [[torch.softmax(t.float(), 1) for t in self._teacher_outputs(self.noisy(data))[:len(targets)]]
                  for _ in range(self.uncertainty_passes)]
        threshold = uncertainty_threshold(self.training_progress())
        packed = []
        for scale in range(len(targets)):
            mean = torch.stack([p[scale] for p in passes]).mean(dim=0)
            packed.append(with_weight(passes[0][scale], certainty_mask(entropy(mean), threshold)))
        return packed


class nnUNetTrainerUAMTWarmStart(nnUNetTrainerContinued, nnUNetTrainerUAMT):
    """UA-MT continuing this fold's nnUNetTrainer model (the warm-start protocol's epochs and phases)."""
