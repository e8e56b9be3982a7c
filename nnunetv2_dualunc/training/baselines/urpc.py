"""URPC, uncertainty-rectified pyramid consistency (Luo et al., MICCAI 2021 / MedIA 2022) as an nnU-Net trainer: on
unlabelled images the decoder's outputs at several resolutions are made to agree, each pulled towards their mean
where it agrees with it, while the disagreement itself (the uncertainty) is penalised. No teacher.

Choices, from the authors' code (SSL4MIS train_uncertainty_rectified_pyramid_consistency_2D.py, networks/unet.py;
none of it copied):
- the pyramid is nnU-Net's own deep-supervision heads: the first ``pyramid_scales`` = 4 outputs (full resolution and
  the three below it, as their four), each upsampled (bi/trilinearly, as their 3D network does; their 2D code uses
  nearest) to full resolution before the softmax;
- their auxiliary heads see dropout, feature dropout or feature noise; nnU-Net's heads differ by resolution only, no
  perturbation is added (nnU-Net's network has no dropout);
- consistency: for each scale s, mean(exp(-u_s) (p_mean - p_s)^2) / mean(exp(-u_s)) + mean(u_s) with
  u_s = KL(p_mean || p_s), averaged over the scales, p_mean not detached; weight 0.1 x the sigmoid ramp-up over the
  whole run;
- supervised loss: nnU-Net's, which already supervises every deep-supervision scale (theirs: CE + Dice on all four);
- recipe-only twin: the same consistency on labelled cases (it uses no target).
"""
from typing import List

import torch

from nnunetv2_dualunc.method.consistency import rectified_pyramid_consistency, upsampled_probabilities
from nnunetv2_dualunc.training.baselines.online import nnUNetTrainerOnlineSemiSupervised
from nnunetv2_dualunc.training.continued import nnUNetTrainerContinued


class nnUNetTrainerURPC(nnUNetTrainerOnlineSemiSupervised):
    unsupervised_loss_weight = 0.1
    rampup_share = 1.0
    pyramid_scales: int = 4

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if not self.enable_deep_supervision:
            raise RuntimeError(f"{self.__class__.__name__} needs nnU-Net's deep supervision (its outputs at several "
                               f"resolutions are the pyramid); this trainer has it switched off.")

    def second_batch_loss(self, heads: list, targets: List[torch.Tensor]) -> torch.Tensor:
        scales = heads[0][:self.pyramid_scales]
        if len(scales) < 2:
            raise RuntimeError(f"{self.__class__.__name__}: the network has {len(scales)} output scale; the pyramid "
                               f"consistency needs at least 2 (a deeper network or a bigger patch).")
        return rectified_pyramid_consistency(upsampled_probabilities(scales, scales[0].shape[2:]))


class nnUNetTrainerURPCWarmStart(nnUNetTrainerContinued, nnUNetTrainerURPC):
    """URPC continuing this fold's nnUNetTrainer model (the warm-start protocol's epochs and phases)."""
