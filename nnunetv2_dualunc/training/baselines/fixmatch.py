"""FixMatch-style weak/strong consistency (Sohn et al., NeurIPS 2020; for segmentation as in UniMatch and
nnFilterMatch) as an nnU-Net trainer: the network's own confident prediction on an unlabelled patch (the weak view:
nnU-Net's augmentation) is the hard target of the same patch strongly augmented.

Choices:
- weak view: the patch as nnU-Net's loader augments it; its prediction by the network itself (no teacher, no
  gradient), argmax per deep-supervision scale;
- confidence filter: a voxel counts when its top probability is at least 0.95 (FixMatch, UniMatch); cross entropy
  summed over the confident voxels / all voxels, weight 1, no ramp-up;
- strong view: intensity changes that keep geometry (brightness, contrast, gamma, noise, blur) and CutMix inside the
  batch, the targets and masks mixed alike (method/strong_augmentation.py; ST++'s and UniMatch's list translated to
  grey values);
- nnFilterMatch (Ordi117/nnFilterMatch) differs: no voxel threshold, a rot90/flip strong view, nnU-Net's Dice + CE on
  the pseudo-labels, unlabelled images from epoch 20 and a case filter by entropy every 100 epochs; not built here;
- recipe-only twin: the labelled cases' true labels as targets (ignore label not counted), the same strong view.
"""
from typing import List

import torch
from torch import autocast, nn

from nnunetv2_dualunc.method.consistency import (ConfidentCrossEntropy, confident_pseudo_labels, with_weight,
                                                 without_ignored)
from nnunetv2_dualunc.method.strong_augmentation import strong_view
from nnunetv2_dualunc.training.baselines.online import nnUNetTrainerOnlineSemiSupervised
from nnunetv2_dualunc.training.continued import nnUNetTrainerContinued
from nnunetv2_dualunc.training.semi_supervised import _as_list


class nnUNetTrainerFixMatch(nnUNetTrainerOnlineSemiSupervised):
    confidence_threshold: float = 0.95

    def pseudo_label_loss(self) -> nn.Module:
        return ConfidentCrossEntropy()

    def second_batch(self, data: torch.Tensor, target: List[torch.Tensor], data_u: torch.Tensor,
                     target_u: List[torch.Tensor]) -> tuple:
        """The strong view of the second batch, with_weight(hard target, confidence mask) per scale."""
        if self.second_batch_is_labelled:
            labels, masks = zip(*(without_ignored(t, self.label_manager.ignore_label) for t in target_u))
        else:
            with torch.no_grad(), autocast(self.device.type, enabled=self.device.type == "cuda"):
                weak = [torch.softmax(t.float(), 1) for t in _as_list(self.network(data_u))[:len(target_u)]]
            labels, masks = zip(*(confident_pseudo_labels(p, self.confidence_threshold) for p in weak))
        strong, (labels, masks) = strong_view(data_u, [list(labels), list(masks)])
        return strong, [with_weight(t, m) for t, m in zip(labels, masks)]


class nnUNetTrainerFixMatchWarmStart(nnUNetTrainerContinued, nnUNetTrainerFixMatch):
    """FixMatch continuing this fold's nnUNetTrainer model (the warm-start protocol's epochs and phases)."""
