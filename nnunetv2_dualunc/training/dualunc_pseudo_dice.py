"""DualUnc with a Dice term on the pseudo-labels: a departure from the paper, hence its own trainers.

Eq. 4 trains on pseudo-labels with cross entropy only, which the background voxels of a cardiac slice dominate;
the labelled loss (Eq. 5) pairs cross entropy with Dice for exactly that reason. Here the pseudo-labelled loss is
Eq. 4 + nnU-Net's soft Dice of the main decoder against the pseudo-label, with every voxel weighted by exp(-KL)
(a fixed weight), so the voxels the decoders disagree on count less in the Dice too (method/losses.py).
"""
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart


class nnUNetTrainerDualUncPseudoDice(nnUNetTrainerDualUnc):
    pseudo_label_dice = True


class nnUNetTrainerDualUncWarmStartPseudoDice(nnUNetTrainerDualUncWarmStart):
    pseudo_label_dice = True
