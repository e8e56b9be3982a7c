"""ST++ (Yang et al., CVPR 2022) as an nnU-Net trainer: self-training in which the unlabelled images whose predictions
stayed stable over the teacher's checkpoints are pseudo-labelled and trained on first, then all of them, each time
under strong augmentation. Algorithm 1's schedule (training/self_training.py) with ST++'s ranking, view and loss.

Choices, from the authors' code (LiheYoung/ST-PlusPlus; none of it copied):
- ranking: 1 - the mean over earlier checkpoints of the class-mean IoU between their argmax and the final
  checkpoint's (method/ranking.prediction_instability); the more stable half is reliable. Their three checkpoints are
  taken at 1/3, 2/3 and the end of supervised training; here K = 3 snapshots of the pre-training phase at Algorithm
  1's places (its second half);
- pseudo-labels: the teacher's with test-time augmentation (theirs: scales and flip; here nnU-Net's mirroring);
- strong view of every pseudo-labelled patch: intensity changes and CutMix (method/strong_augmentation.py; their
  list for RGB: colour jitter, grey scale, blur, cutout);
- losses: cross entropy on the pseudo-labels (theirs), nnU-Net's Dice + CE on the labelled batch, summed as nnU-Net
  sums them (as every trainer of the comparison);
- re-training: they re-initialise the network for each re-training and re-label the unreliable images only; here the
  student continues from the teacher and re-labels all images (Algorithm 1), so one schedule serves both methods;
- recipe-only twin: the labelled cases with their labels under the same strong view.
"""
import torch

from nnunetv2_dualunc.method.ranking import prediction_instability
from nnunetv2_dualunc.method.strong_augmentation import strong_view
from nnunetv2_dualunc.training.self_training import nnUNetTrainerSelfTraining
from nnunetv2_dualunc.training.warm_start import WarmStartMixin


class nnUNetTrainerSTPlusPlus(nnUNetTrainerSelfTraining):
    pretrain_epochs = 200
    stage1_epochs = 200
    stage2_epochs = 200
    num_snapshots = 3
    labelled_loss_weight = 1.0
    pseudo_label_mirroring = True
    ranking_score = "prediction instability (ST++)"

    def case_uncertainty(self, teacher_probabilities: torch.Tensor, earlier_probabilities) -> float:
        return prediction_instability(teacher_probabilities, earlier_probabilities)

    def second_batch(self, data, target, data_u, target_u) -> tuple:
        data_u, target_u = super().second_batch(data, target, data_u, target_u)
        strong, (target_u,) = strong_view(data_u, [target_u])
        return strong, target_u


class nnUNetTrainerSTPlusPlusWarmStart(WarmStartMixin, nnUNetTrainerSTPlusPlus):
    """ST++ continuing this fold's nnUNetTrainer model: a short first phase for the snapshots, then the stages (the
    warm start's epochs, as nnUNetTrainerDualUncWarmStart)."""

    pretrain_epochs = 25
