"""BCP, bidirectional copy-paste (Bai et al., CVPR 2023) as an nnU-Net trainer: a box of a labelled image is pasted
into an unlabelled one and a box of an unlabelled image into a labelled one; the unlabelled parts are labelled by an
EMA teacher, and the mixed images train with nnU-Net's loss.

Choices, from the authors' code (DeepMed-Lab-ECNU/BCP, ACDC_BCP_train.py; none of it copied):
- pre-training: the first quarter of the epochs mixes labelled images with labelled images (their 10,000 of 40,000
  iterations); the teacher is created from the network when the unlabelled images start, then follows it with a
  fixed momentum 0.99;
- mixing: one box of 2/3 of the patch side per sample, alternating direction inside the batch (method/copy_paste.py,
  as the recommended trainer mixes);
- pseudo-labels: the teacher's argmax on the unmixed unlabelled batch, every deep-supervision scale; their code keeps
  the largest connected component per class, not done here;
- loss: nnU-Net's Dice + CE on the mixed batch with equal weight for every voxel (theirs weighs voxels from unlabelled
  images 0.5), and the labelled batch also trains unmixed, as every trainer of the comparison does (theirs trains
  the mixed images only);
- recipe-only twin: the whole run mixes labelled with labelled images (= supervised copy-paste in this class).
"""
from torch import nn

from nnunetv2_dualunc.training.baselines.online import nnUNetTrainerOnlineSemiSupervised
from nnunetv2_dualunc.training.continued import nnUNetTrainerContinued
from nnunetv2_dualunc.training.online_teacher import OnlineTeacherMixin


class nnUNetTrainerBCP(OnlineTeacherMixin, nnUNetTrainerOnlineSemiSupervised):
    copy_paste_fraction = 2 / 3
    labelled_second_batch_share = 0.25

    def pseudo_label_loss(self) -> nn.Module:
        return self.nnunet_scale_loss()


class nnUNetTrainerBCPWarmStart(nnUNetTrainerContinued, nnUNetTrainerBCP):
    """BCP continuing this fold's nnUNetTrainer model: the start model is the pre-trained one, so the unlabelled
    images are mixed in from the first epoch."""

    labelled_second_batch_share = 0.0
