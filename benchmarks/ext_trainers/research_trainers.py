"""Research variants of DualUnc that were measured and not recommended: they left the product's trainer list and live
here, beside the benchmarks that measured them (found through nnUNet_extTrainer with benchmarks/ext_trainers).

Each is one or two class attributes of the library's trainers, so a user can still set them; the evidence is in the
dated experiment log (docs/log/README.md):

- ``...PseudoDice``: nnU-Net's soft Dice on the pseudo-labels (weighted by exp(-KL)) without copy-paste. After a warm
  start on ACDC 7 labelled it gained less than Eq. 4 as written over five paired runs (-0.6), with a shorter HD95.
- ``...FgRank``: Eq. 1 per teacher-foreground voxel instead of the paper's mean over all voxels. It ranks ACDC's
  pseudo-labels better; trained, a gain with 3 labelled patients, below Eq. 1 as written with 7.
- ``...CopyPaste``: copy-paste without the pseudo-label Dice, the recommendation of 2026-12-05 morning; the Dice term
  (the recommended trainer, nnUNetTrainerDualUncPlus) added +0.4 / +2.7 over it on ACDC 7 labelled.
- ``...IfUndersegmented``: the recommended trainer whose Dice term is kept only where the stage-1 pseudo-labels
  under-segment a class (method/class_volume.py, threshold 0.85 read off earlier runs). Its rule, set before its
  runs, failed on Hippocampus (2026-12-06).
- ``nnUNetTrainerDualUncLightAux``: one convolution per auxiliary-decoder stage at half width (+17 % FLOPs instead
  of +68 % on ACDC 2d); lost accuracy from scratch (2026-11-26).
"""
from nnunetv2_dualunc.training.demo_trainers import warm_start_demo_variant
from nnunetv2_dualunc.training.dualunc import nnUNetTrainerDualUnc
from nnunetv2_dualunc.training.dualunc_plus import (nnUNetTrainerDualUncCopyPastePseudoDice,
                                                    nnUNetTrainerDualUncWarmStartCopyPastePseudoDice)
from nnunetv2_dualunc.training.dualunc_warm_start import nnUNetTrainerDualUncWarmStart


class nnUNetTrainerDualUncPseudoDice(nnUNetTrainerDualUnc):
    pseudo_label_dice = True


class nnUNetTrainerDualUncWarmStartPseudoDice(nnUNetTrainerDualUncWarmStart):
    pseudo_label_dice = True


class nnUNetTrainerDualUncFgRank(nnUNetTrainerDualUnc):
    uncertainty_per_foreground_voxel = True


class nnUNetTrainerDualUncWarmStartFgRank(nnUNetTrainerDualUncWarmStart):
    uncertainty_per_foreground_voxel = True


class nnUNetTrainerDualUncCopyPaste(nnUNetTrainerDualUnc):
    copy_paste_fraction = 2 / 3


class nnUNetTrainerDualUncWarmStartCopyPaste(nnUNetTrainerDualUncWarmStart):
    copy_paste_fraction = 2 / 3


class nnUNetTrainerDualUncCopyPastePseudoDiceIfUndersegmented(nnUNetTrainerDualUncCopyPastePseudoDice):
    pseudo_label_dice_if_share_below = 0.85


class nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceIfUndersegmented(
        nnUNetTrainerDualUncWarmStartCopyPastePseudoDice):
    pseudo_label_dice_if_share_below = 0.85


class nnUNetTrainerDualUncLightAux(nnUNetTrainerDualUnc):
    aux_convs_per_stage = 1
    aux_width = 0.5


# the demo's earlier trainers, for rerunning the demo experiments of 2026-12-01 to 2026-12-06
# (`nnunetv2_dualunc demo --methods nnUNetTrainer_demo nnUNetTrainerContinued_demo ...`, benchmarks/demo_runs.py)
nnUNetTrainerDualUncWarmStartPseudoDice_demo = warm_start_demo_variant(
    nnUNetTrainerDualUncWarmStartPseudoDice, __name__)
nnUNetTrainerDualUncWarmStartFgRank_demo = warm_start_demo_variant(nnUNetTrainerDualUncWarmStartFgRank, __name__)
nnUNetTrainerDualUncWarmStartCopyPaste_demo = warm_start_demo_variant(nnUNetTrainerDualUncWarmStartCopyPaste, __name__)
nnUNetTrainerDualUncWarmStartCopyPastePseudoDice_demo = warm_start_demo_variant(
    nnUNetTrainerDualUncWarmStartCopyPastePseudoDice, __name__)
nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceIfUndersegmented_demo = warm_start_demo_variant(
    nnUNetTrainerDualUncWarmStartCopyPastePseudoDiceIfUndersegmented, __name__)
